"""The context object every command gets: where the API is, the token, the config file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from scheduler.cli.client import ApiClient
from scheduler.cli.errors import CliError

if TYPE_CHECKING:
    from scheduler.config import Settings

DEFAULT_URL = "http://127.0.0.1:8470"


@dataclass(frozen=True, slots=True)
class CliContext:
    """Built once by the root callback from ``--url``/``--token``/``--config`` or their env vars
    (``GREENLIGHT_URL``, ``GREENLIGHT_TOKEN``, ``GREENLIGHT_CONFIG``)."""

    url: str
    token: str | None
    config: Path | None
    read_timeout_s: float

    def client(self) -> ApiClient:
        return ApiClient(self.url, self.token, read_timeout_s=self.read_timeout_s)

    def settings(self, **overrides: Any) -> Settings:
        """Settings for the commands that work locally (serve, token, db, demo).

        Raises CliError with the first problem when the configuration does not validate.
        """
        from pydantic import ValidationError

        from scheduler.config import load_settings

        if self.config is not None and not self.config.is_file():
            raise CliError(f"config file {self.config} does not exist")
        try:
            return load_settings(self.config, **overrides)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "config"
            raise CliError(f"bad configuration: {where}: {first.get('msg', 'invalid')}") from None
        except ValueError as e:  # tomllib.TOMLDecodeError and friends
            raise CliError(f"cannot read the configuration: {e}") from None


def cli_context(ctx: typer.Context) -> CliContext:
    """The object the root callback stored on the click context."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):
        raise CliError("internal: the CLI context was not initialised")
    return obj
