"""Every exception browsergrid raises on purpose.

BrowsergridError            catch this to catch them all
├── ConfigError             a bad option or setting; the message says which and why
├── ProtocolError           a frame that breaks docs/protocol.md; ``code`` names the rule
└── IllegalTransition       a bug: the scheduler was asked to move a task or worker
                            between states where no such move exists
"""

from __future__ import annotations


class BrowsergridError(Exception):
    """Base class of every error browsergrid raises on purpose."""


class ConfigError(BrowsergridError):
    """An option or setting is invalid; fix the value the message names and start again."""


class ProtocolError(BrowsergridError):
    """A frame does not follow docs/protocol.md.

    ``code`` is the error code sent back to the peer (``bad_json``, ``bad_message``,
    ``unknown_type``); the connection may go on.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class IllegalTransition(BrowsergridError):
    """A state change that the state diagram in docs/architecture.md does not allow.

    This is always a bug in browsergrid; please report it with the log lines around it.
    """
