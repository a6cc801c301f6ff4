"""Small wheels made on the spot, for tests of environments that need no registry."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile


def make_wheel(
    name: str, version: str, files: dict[str, str], *, tag: str = "py3-none-any"
) -> tuple[str, bytes]:
    """A wheel of ``name`` ``version`` holding ``files`` (path -> text): its file name
    and bytes (``tag``: its PY-ABI-PLATFORM)."""
    info = f"{name}-{version}.dist-info"
    entries = dict(files)
    entries[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    entries[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: browsergrid-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    )
    record = []
    for path, text in entries.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={encoded},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = "\n".join(record) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(entries):
            archive.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), entries[path])
    return f"{name}-{version}-{tag}.whl", buffer.getvalue()


def ref(data: bytes) -> dict[str, object]:
    return {"$blob": hashlib.sha256(data).hexdigest(), "size": len(data), "format": "bytes"}
