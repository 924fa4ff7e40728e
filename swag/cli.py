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


@app.command("record")
def record_command(
    game: Annotated[str, typer.Option(help="Game name (see `swag games`).")],
    out: Annotated[Path, typer.Option(help="Recording prefix: writes OUT.mp4, OUT.jsonl and OUT.json.")],
    level: Annotated[str, typer.Option(help="Level, e.g. 1-1; empty for games without levels.")] = "",
    style: Annotated[str, typer.Option(help="Demonstrator style: cautious, speedy or jumpy.")] = "cautious",
    seed: Annotated[int, typer.Option(help="Seed of the demonstrator and the emulator reset.")] = 0,
    max_frames: Annotated[int, typer.Option(help="Stop after this many frames (60 per second).")] = 4000,
) -> None:
    """Play one episode with a scripted demonstrator and record it (lossless mp4 + jsonl + json)."""
    from swag.recording import record_episode

    meta = record_episode(game, level or None, style, seed, max_frames, out)
    log.info("%s: %d frames, progress %s", out, meta["frames"], meta["progress"])


@app.command("convert")
def convert_command(
    source: Annotated[Path, typer.Argument(help="Recording prefix (or its .json/.mp4/.jsonl), or a folder of recordings.")],
    out: Annotated[Path, typer.Argument(help="Output store (.zarr), or a folder of stores when SOURCE is a folder.")],
    height: Annotated[int, typer.Option(help="Frame height of the store, pixels.")] = 60,
    width: Annotated[int, typer.Option(help="Frame width of the store, pixels.")] = 64,
    fps: Annotated[float, typer.Option(help="Frame rate of the store (at most the recording's 60).")] = 20,
    truth: Annotated[Optional[Path], typer.Option(help="Put the actions in this separate truth store (a folder "
                                                       "when SOURCE is a folder); the store gets none.")] = None,
    chunk_frames: Annotated[int, typer.Option(help="Frames per Zarr chunk.")] = 64,
) -> None:
    """Convert raw recordings to Zarr stores at the given resolution and frame rate."""
    from swag.convert import convert_folder, convert_recording

    options = dict(height=height, width=width, fps=fps, chunk_frames=chunk_frames)
    if source.is_dir():
        stores = convert_folder(source, out, truth_folder=truth, **options)
        log.info("%s: converted %d recordings into %s", source, len(stores), out)
    else:
        attrs = convert_recording(source, out, truth_path=truth, **options)
        log.info("%s: %d frames at %g fps, %dx%d", out, attrs["frames"], fps, width, height)


@app.command("index")
def index_command(
    stores: Annotated[list[Path], typer.Argument(help="The dataset's Zarr stores.")],
    dataset: Annotated[str, typer.Option(help="Dataset name, e.g. idm or vpt.")],
    out: Annotated[Path, typer.Option(help="Index JSON to write.")],
    test_fraction: Annotated[float, typer.Option(help="Share of recordings (by stable hash) in the test split.")] = 0.2,
    heldout_style: Annotated[Optional[list[str]], typer.Option(help="Style kept out of training as the "
                                                                   "unseen_style split; repeatable.")] = None,
) -> None:
    """Index a dataset's stores and split them by recording into train / test / unseen_style."""
    from swag.index import build_index, write_index

    index = build_index(dataset, stores, test_fraction, heldout_style or ())
    write_index(index, out)
    log.info("%s: %d stores, frames per split %s", out, len(index["stores"]), index["summary"]["frames_per_split"])


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
