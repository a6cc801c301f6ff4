"""``serve --name`` and ``--message``: what the worker page says of its coordinator, bounded
and plain, refused with a clear one-line error."""

from __future__ import annotations

import pytest

from browsergrid.cli import main
from browsergrid.config import DEFAULT_NAME, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, ServeConfig
from browsergrid.errors import ConfigError


def test_the_name_has_a_default_and_the_message_is_optional() -> None:
    config = ServeConfig()
    assert (config.name, config.message) == (DEFAULT_NAME, None) == ("browsergrid", None)


def test_names_and_messages_within_bounds_are_kept_as_given() -> None:
    config = ServeConfig(name="Aula 3 · Física", message="¡Gracias!\nCierra la pestaña al salir.")
    assert config.name == "Aula 3 · Física"
    assert config.message == "¡Gracias!\nCierra la pestaña al salir."
    ServeConfig(name="n" * MAX_NAME_CHARS, message="m" * MAX_MESSAGE_CHARS)


@pytest.mark.parametrize(
    ("name", "message", "said"),
    [
        ("", None, "--name must be 1 to 80 characters long"),
        ("   ", None, "--name must be 1 to 80 characters long"),
        ("n" * (MAX_NAME_CHARS + 1), None, "--name must be 1 to 80 characters long"),
        ("two\nlines", None, "--name must be plain text, on one line"),
        ("bell\a", None, "--name must be plain text"),
        ("ok", "", "--message must be 1 to 500 characters long"),
        ("ok", "m" * (MAX_MESSAGE_CHARS + 1), "--message must be 1 to 500 characters long"),
        ("ok", "escape \x1b[31m", "--message must be plain text, without control characters"),
    ],
)
def test_out_of_bounds_names_and_messages_are_refused(
    name: str, message: str | None, said: str
) -> None:
    with pytest.raises(ConfigError, match=said.replace("(", r"\(")):
        ServeConfig(name=name, message=message)


def test_serve_refuses_a_bad_name_in_one_line_before_it_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--memory", "--name", "x" * 81]) == 2
    assert capsys.readouterr().err == (
        "browsergrid serve: error: --name must be 1 to 80 characters long (not only spaces)\n"
    )
