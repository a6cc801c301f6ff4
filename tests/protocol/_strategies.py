"""Hypothesis strategies shared by the protocol tests: arbitrary JSON and raw frames."""

from __future__ import annotations

import json

from hypothesis import strategies as st

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def raw_frames(typed_objects: st.SearchStrategy[dict[str, object]]) -> st.SearchStrategy[object]:
    """Text, bytes, any JSON, and objects shaped like messages (``typed_objects``)."""
    return (
        st.text()
        | json_values.map(json.dumps)
        | typed_objects.map(json.dumps)
        | st.binary().map(bytes)
    )
