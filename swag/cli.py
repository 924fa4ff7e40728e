"""The `swag` command line: one subcommand per pipeline stage.

Each command is a thin shell over a library function; imports happen inside the
commands so that `swag --help` is quick and the model code never needs the emulator.
Errors of bad input (SwagError) become one line on stderr and exit code 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from swag.errors import SwagError

app = typer.Typer(
    name="swag",
    help="Video PreTraining (VPT) for NES games.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

log = logging.getLogger("swag")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=True)],
    )


@app.command("games")
def games_command() -> None:
    """List the NES games swag can emulate, with their levels and ROM check."""
    from swag import games

    for spec in games.GAMES.values():
        levels = f"{len(spec.levels)} levels" if spec.levels else "no level choice"
        typer.echo(f"{spec.name:16} {spec.title:40} {levels:16} rom sha1 {spec.check_rom()[:12]}")


# --- stage commands are added below, one section per stage ---------------------------------------


@app.command("data-stats")
def data_stats_command(
    index: Annotated[Path, typer.Argument(help="Dataset index JSON (from `swag index`).")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for stats.json, frames.png and buttons.png.")],
) -> None:
    """Frames per game and split, and button press rates, for the report."""
    from swag.stats import write_statistics

    stats = write_statistics(index, out_dir)
    log.info("%s: %d recordings, frames per game %s", index, stats["recordings"], stats["frames"])


def run() -> None:
    """Entry point: turns SwagError into `swag: error: …` and exit code 1."""
    try:
        app(standalone_mode=False)
    except SwagError as error:
        print(f"swag: error: {error}", file=sys.stderr)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        print("swag: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # click's usage errors carry their own exit code
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise


if __name__ == "__main__":
    run()
