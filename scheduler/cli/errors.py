"""The CLI's one error type: a one-line message and an exit code, printed by ``main``."""

from __future__ import annotations

EXIT_FAILURE = 1


class CliError(Exception):
    """Something the user can act on; ``str(error)`` is the single line shown on stderr."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
