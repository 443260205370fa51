"""The one error type of `harness fetch`, carrying its exit code.

Exit 2 means the input is wrong and retrying will not help (checksum mismatch, a revision or file
that does not exist, a version PyPI does not have); exit 1 means the network or a server failed and
a later retry may succeed. Both print one clear line naming the artifact.
"""

from __future__ import annotations

EXIT_TRANSIENT = 1
EXIT_BAD_INPUT = 2


class FetchError(Exception):
    """An artifact could not be fetched; `str(exc)` names it and says why."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def scrub(text: str, secret: str | None) -> str:
    """Remove a secret (the HF token) from text before it reaches a log line or the lock file."""
    if secret:
        text = text.replace(secret, "***")
    return text
