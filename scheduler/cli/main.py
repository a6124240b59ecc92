"""``greenlight``: the command line. Most commands call the REST API (as ``ray job submit``
calls the dashboard); ``serve``, ``token create``, ``db upgrade`` and ``demo`` work locally.

Every failure ends the process with a non-zero code and ONE line on stderr
(``greenlight: error: ...``): no usage box, no traceback. ``GREENLIGHT_DEBUG=1`` re-raises
unexpected errors for a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from scheduler.cli import admin, forecasts, jobs, simulate
from scheduler.cli.client import DEFAULT_READ_TIMEOUT_S
from scheduler.cli.context import DEFAULT_URL, CliContext
from scheduler.cli.errors import EXIT_FAILURE, CliError
from scheduler.domain import GreenlightError

PROG = "greenlight"


def fail(message: str, exit_code: int = EXIT_FAILURE) -> NoReturn:
    """Print one line on stderr and exit."""
    one_line = " ".join(str(message).split()) or "failed"
    sys.stderr.write(f"{PROG}: error: {one_line}\n")
    sys.exit(exit_code)


class OneLineErrors(TyperGroup):
    """Runs the command tree in click's non-standalone mode so every error passes here."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args,
                prog_name or PROG,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except _CLICK_ERROR as e:
            if _is_help_request(e):
                e.show()  # a group run bare: its help text, as click would print it
                sys.exit(e.exit_code)
            fail(_usage_message(e), e.exit_code)
        except typer.Abort:
            fail("aborted", 130)
        except CliError as e:
            fail(str(e), e.exit_code)
        except GreenlightError as e:
            fail(str(e) or type(e).__name__)
        except Exception as e:  # the shell: a bug still gets one line, unless debugging
            if os.environ.get("GREENLIGHT_DEBUG"):
                raise
            fail(f"unexpected {type(e).__name__}: {e} (GREENLIGHT_DEBUG=1 shows a traceback)")
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


# Typer may vendor click (typer._click) or use click itself; its public BadParameter leads to
# whichever ClickException it raises, without importing a private module.
_CLICK_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _is_help_request(error: BaseException) -> bool:
    return any(c.__name__ == "NoArgsIsHelpError" for c in type(error).__mro__)


def _usage_message(error: Any) -> str:
    message = str(error.format_message())
    ctx = getattr(error, "ctx", None)
    command_path = getattr(ctx, "command_path", None)
    if command_path and any(c.__name__ == "UsageError" for c in type(error).__mro__):
        return f"{message} (see `{command_path} --help`)"
    return message


app = typer.Typer(
    cls=OneLineErrors,
    name=PROG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: one option per line, descriptions wrapped to the terminal (80 columns
    # reads well), where rich boxes squeeze every column.
    rich_markup_mode=None,
    help="Greenlight: a carbon-aware scheduler for training jobs and deployments.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="GREENLIGHT_URL", help="The API's base URL.")] = (
        DEFAULT_URL
    ),
    token: Annotated[
        str | None,
        typer.Option(
            envvar="GREENLIGHT_TOKEN",
            show_default=False,
            help="API token (`greenlight token create`).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar="GREENLIGHT_CONFIG",
            show_default=False,
            help="Config TOML for local commands (serve, token, db, demo).",
        ),
    ] = None,
    timeout_s: Annotated[float, typer.Option(min=0.1, help="Read timeout for API calls, s.")] = (
        DEFAULT_READ_TIMEOUT_S
    ),
) -> None:
    """Shared options, read once into the context object every command uses."""
    ctx.obj = CliContext(url=url, token=token or None, config=config, read_timeout_s=timeout_s)


jobs.register(app)
forecasts.register(app)
admin.register(app)
simulate.register(app)


if __name__ == "__main__":
    app()
