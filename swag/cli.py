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


@app.command("ingest-video")
def ingest_video_command(
    video: Annotated[Path, typer.Argument(help="Any FFmpeg-readable video of NES play (mp4, mkv, webm...).")],
    out: Annotated[Path, typer.Argument(help="The store to write (OUT.zarr).")],
    height: Annotated[int, typer.Option(help="Frame height of the store.")] = 60,
    width: Annotated[int, typer.Option(help="Frame width of the store.")] = 64,
    fps: Annotated[float, typer.Option(help="Frame rate of the store (resampled by timestamps).")] = 20.0,
    game: Annotated[Optional[str], typer.Option(help="Game shown, recorded in the store's attributes.")] = None,
    chunk_frames: Annotated[int, typer.Option(help="Frames per Zarr chunk.")] = 64,
) -> None:
    """Video -> unlabelled store: borders removed, NES aspect, configured size and fps."""
    from swag.ingest.video import ingest_video

    attrs = ingest_video(video, out, height=height, width=width, fps=fps, game=game, chunk_frames=chunk_frames)
    crop = attrs["provenance"]["crop"]
    typer.echo(f"{out}: {attrs['frames']} frames, picture {crop['width']}x{crop['height']} at "
               f"({crop['x']}, {crop['y']}) of {attrs['provenance']['source_width']}x"
               f"{attrs['provenance']['source_height']}")


@app.command("import-smbdataset")
def import_smbdataset_command(
    folder: Annotated[Path, typer.Argument(help="The unpacked smbdataset (episode folders), or one episode folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the raw recordings (PREFIX.mp4/.jsonl/.json).")],
    on_gap: Annotated[str, typer.Option(help="A gap in frame numbers: 'fail', or 'skip' to split the episode there.")] = "fail",
) -> None:
    """github.com/rafaelcp/smbdataset episodes -> raw recordings (actions remapped to our byte)."""
    from swag.ingest.smbdataset import import_smbdataset

    written = import_smbdataset(folder, out_dir, on_gap=on_gap)
    typer.echo(f"{out_dir}: {len(written)} recordings")


@app.command("import-fm2")
def import_fm2_command(
    movie: Annotated[Path, typer.Argument(help="An FCEUX FM2 v3 movie (text, from power-on).")],
    out_prefix: Annotated[Path, typer.Argument(help="Recording prefix to write (PREFIX.mp4/.jsonl/.json).")],
    force_game: Annotated[Optional[str], typer.Option(help="Replay on this game's ROM even if the checksum differs (may desync).")] = None,
) -> None:
    """Replay an FCEUX .fm2 movie in nes-py from power-on into a labelled raw recording."""
    from swag.ingest.fm2 import import_fm2

    import_fm2(movie, out_prefix, force_game=force_game)
    typer.echo(f"{out_prefix}: recording written")


@app.command("make-web-video")
def make_web_video_command(
    prefix: Annotated[Path, typer.Argument(help="A raw recording's prefix (or any of its three files).")],
    out: Annotated[Path, typer.Argument(help="The web video to write (OUT.mp4; geometry in OUT.web.json).")],
    seed: Annotated[int, typer.Option(help="Draws the options left unset.")] = 0,
    canvas: Annotated[Optional[str], typer.Option(help="Frame size WIDTHxHEIGHT, e.g. 1280x720 or 854x480.")] = None,
    scale: Annotated[Optional[float], typer.Option(help="Picture upscale factor (2-4).")] = None,
    interpolation: Annotated[Optional[str], typer.Option(help="Upscaling: nearest, linear or cubic.")] = None,
    crf: Annotated[Optional[int], typer.Option(help="H.264 quality (23-28 is typical of uploads).")] = None,
    overlay: Annotated[Optional[bool], typer.Option("--overlay/--no-overlay", help="Draw a logo and a timer box.")] = None,
) -> None:
    """Turn a recording into a realistic web video: upscaled, 16:9 letterboxed, 30 fps, lossy H.264."""
    from swag.convert import recording_prefix
    from swag.ingest.webvideo import INTERPOLATIONS, WebStyle, make_web_video

    canvas_width = canvas_height = None
    if canvas:
        try:
            canvas_width, canvas_height = (int(part) for part in canvas.lower().split("x"))
        except ValueError:
            raise SwagError(f"--canvas {canvas!r} is not WIDTHxHEIGHT") from None
    if interpolation is not None and interpolation not in INTERPOLATIONS:
        raise SwagError(f"--interpolation {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
    style = WebStyle(canvas_width, canvas_height, scale, interpolation, crf, 30.0, overlay)
    result = make_web_video(recording_prefix(prefix), out, seed=seed, style=style)
    typer.echo(f"{out}: {result['frames']} frames, {result['canvas_width']}x{result['canvas_height']}, "
               f"picture x{result['scale']:g} at ({result['crop']['x']}, {result['crop']['y']}), crf {result['crf']}")


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
