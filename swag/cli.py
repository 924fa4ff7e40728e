"""The `swag` command line: one subcommand per pipeline stage.

Each command is a thin shell over a library function; imports happen inside the
commands so that `swag --help` is quick and the model code never needs the emulator.
Errors of bad input (SwagError) become one line on stderr and exit code 1.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from swag.errors import EXIT_INTERRUPTED, SwagError, TrainingInterrupted

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
    # read where the model runs (swag.model.uses_bf16); checked here so a typo fails before any work
    precision = os.environ.get("SWAG_PRECISION")
    if precision and precision not in ("auto", "bf16", "fp32"):
        raise SwagError(f"environment variable SWAG_PRECISION must be auto, bf16 or fp32, got {precision!r}")
    # Into a file (a workflow job's log), a progress bar redrawn ten times a second made the demo's
    # IDM training log 3,000 lines (220 KB); redrawn every 30 s it stays readable. tqdm reads
    # TQDM_* defaults when it is imported, which the commands do after this runs.
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_MININTERVAL", "30")


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
    style: Annotated[str, typer.Option(help="Demonstrator style: cautious, speedy, jumpy or "
                                                   "explorer (SMB: brakes at random moments).")] = "cautious",
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
    train_only_style: Annotated[Optional[list[str]], typer.Option(help="Style whose recordings all train, none "
                                                                       "tested (coverage play such as "
                                                                       "explorer); repeatable.")] = None,
) -> None:
    """Index a dataset's stores and split them by recording into train / test / unseen_style."""
    from swag.index import build_index, write_index

    index = build_index(dataset, stores, test_fraction, heldout_style or (), train_only_style or ())
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
    level: Annotated[Optional[str], typer.Option(help="Level shown, if one (e.g. 1-1).")] = None,
    style: Annotated[str, typer.Option(help="Style label for the dataset index (held-out styles split by it).")] = "web",
    chunk_frames: Annotated[int, typer.Option(help="Frames per Zarr chunk.")] = 64,
    truth_from: Annotated[Optional[Path], typer.Option(help="Raw recording the video was made from (make-web-video): "
                                                            "its actions become a truth store for evaluation.")] = None,
    truth: Annotated[Optional[Path], typer.Option(help="Truth store to write with --truth-from.")] = None,
) -> None:
    """Video -> unlabelled store: borders removed, NES aspect, configured size and fps."""
    from swag.convert import recording_prefix
    from swag.ingest.video import ingest_video

    attrs = ingest_video(video, out, height=height, width=width, fps=fps, game=game, level=level, style=style,
                         chunk_frames=chunk_frames,
                         truth_from=recording_prefix(truth_from) if truth_from else None, truth_path=truth)
    crop = attrs["provenance"]["crop"]
    typer.echo(f"{out}: {attrs['frames']} frames, picture {crop['width']}x{crop['height']} at "
               f"({crop['x']}, {crop['y']}) of {attrs['provenance']['source_width']}x"
               f"{attrs['provenance']['source_height']}")


@app.command("import-smbdataset")
def import_smbdataset_command(
    folder: Annotated[Path, typer.Argument(help="The unpacked smbdataset (episode folders), or one episode folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the raw recordings (PREFIX.mp4/.jsonl/.json).")],
    on_gap: Annotated[str, typer.Option(help="A gap in frame numbers: 'fail', or 'skip' to split the episode there.")] = "fail",
    palette: Annotated[str, typer.Option(help="Colours: 'nes-py' (as our emulator draws) or 'source' (the PNG's).")] = "nes-py",
) -> None:
    """github.com/rafaelcp/smbdataset episodes -> raw recordings (actions remapped to our byte)."""
    from swag.ingest.smbdataset import import_smbdataset

    written = import_smbdataset(folder, out_dir, on_gap=on_gap, palette=palette)
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


@app.command("train-vpt")
def train_vpt_command(
    config: Annotated[Path, typer.Option(help="Pipeline config YAML; its `vpt` section sets the model and training.")],
    index: Annotated[Path, typer.Option(help="Dataset index of the (unlabelled) video stores, e.g. results/index/vpt.json.")],
    labels: Annotated[str, typer.Option(help="Folder of IDM labels stores ({game}/{episode}.zarr), or 'truth' for "
                                             "oracle-BC on the true actions.")],
    out: Annotated[Path, typer.Option(help="Output folder: model.pt, checkpoint.pt, train_log.json, runs/.")],
    weighting: Annotated[str, typer.Option(help="Per-frame loss weight from the label confidence: "
                                                "confidence, drop (0/1 at --min-confidence) or none.")] = "confidence",
    min_confidence: Annotated[float, typer.Option(help="Frames whose label confidence is below this weigh 0.")] = 0.0,
    drop_null: Annotated[bool, typer.Option(help="Give frames with no button pressed weight 0 (as VPT did).")] = False,
) -> None:
    """Train the causal VPT policy by behaviour cloning on IDM labels (or oracle-BC on true actions).

    SIGTERM checkpoints and exits with 143; rerunning the same command resumes.
    """
    from swag.policy import train_vpt
    from swag.train import configs_from_yaml

    model_config, training_config = configs_from_yaml(config, "vpt")
    summary = train_vpt(index, labels, model_config, training_config, out, weighting=weighting,
                        min_confidence=min_confidence, drop_null=drop_null)
    log.info("%s: %d steps, best validation loss %s", out, summary["steps"], summary["best_val_loss"])


@app.command("finetune")
def finetune_command(
    mode: Annotated[str, typer.Option(help="bc (behaviour cloning on the target's recordings) or rl (PPO in the emulator).")],
    config: Annotated[Path, typer.Option(help="Fine-tuning file (results/config/finetune/NAME/{bc,rl}.yaml), or a pipeline "
                                              "config with --target.")],
    out: Annotated[Path, typer.Option(help="Output folder: model.pt, checkpoint.pt, train_log.json, curves.png, runs/.")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="The VPT policy's model.pt to start from.")] = None,
    target: Annotated[Optional[str], typer.Option(help="Target name, when --config is a pipeline config.")] = None,
    index: Annotated[Optional[Path], typer.Option(help="bc: index of the labelled fine-tuning recordings "
                                                       "(results/index/finetune.json).")] = None,
    from_scratch: Annotated[bool, typer.Option(help="rl: fresh weights of the VPT model config instead of "
                                                    "--checkpoint (the RL-from-scratch baseline).")] = False,
    fps: Annotated[float, typer.Option(help="rl: policy frame rate (data.fps); each action is held 60/fps frames.")] = 20,
) -> None:
    """Fine-tune the VPT policy on a target: BC on its recordings, or PPO with a KL leash to the policy.

    SIGTERM checkpoints (bc) or keeps the last finished iteration (rl) and exits with 143;
    rerunning the same command resumes.
    """
    from swag.finetune import finetune_bc, finetune_configs

    target_config, model_config, training = finetune_configs(config, target)
    if mode == "bc":
        if "bc" not in target_config:
            raise SwagError(f"{config}: target {target_config['name']} has no bc section")
        if checkpoint is None or index is None:
            raise SwagError("finetune --mode bc needs --checkpoint and --index")
        summary = finetune_bc(checkpoint, index, target_config, training, out)
        log.info("%s: %d steps, best validation loss %s", out, summary["steps"], summary["best_val_loss"])
    elif mode == "rl":
        from swag.ppo import RLConfig, finetune_rl

        if (checkpoint is None) == (not from_scratch):
            raise SwagError("finetune --mode rl needs --checkpoint, or --from-scratch (not both)")
        try:
            rl_config = RLConfig.from_dict(dict(target_config.get("rl", {})))
        except (ValueError, TypeError) as error:
            raise SwagError(f"{config}: {error}") from None
        summary = finetune_rl(out, target_config["game"], target_config.get("level"), rl_config, fps,
                              checkpoint=None if from_scratch else checkpoint, model_config=model_config)
        last = summary["curves"][-1] if summary["curves"] else {}
        log.info("%s: %d iterations, %d env steps, last return %s", out, summary["iterations"], summary["env_steps"],
                 last.get("episode_return"))
    else:
        raise SwagError(f"finetune: --mode must be bc or rl, got {mode!r}")


@app.command("evaluate-vpt")
def evaluate_vpt_command(
    out: Annotated[Path, typer.Argument(help="Output folder: NAME.json and videos/.")],
    name: Annotated[str, typer.Option(help="Policy name in the results (random, vpt, oracle-bc, demonstrator, ...).")],
    game: Annotated[list[str], typer.Option(help="Game to play, GAME or GAME:LEVEL (e.g. smb1:1-1); repeatable.")],
    agent: Annotated[str, typer.Option(help="model, random or demonstrator.")] = "model",
    checkpoint: Annotated[Optional[Path], typer.Option(help="Policy model.pt (agent model).")] = None,
    index: Annotated[Optional[Path], typer.Option(help="Dataset index: offline metrics on its held-out recordings "
                                                       "(model).")] = None,
    actions_from: Annotated[Optional[Path], typer.Option(help="Random agent: index of labelled play; per game, draw "
                                                              "from the pad bytes its train split pressed (default: "
                                                              "all 256).")] = None,
    style: Annotated[str, typer.Option(help="Demonstrator style, or 'mixed' (a style per episode, by seed).")] = "cautious",
    episodes: Annotated[int, typer.Option(help="Seeded episodes per game.")] = 8,
    max_steps: Annotated[int, typer.Option(help="Policy steps per episode (at --fps).")] = 600,
    fps: Annotated[float, typer.Option(help="Policy frame rate: data.fps; each action is held for 60/fps frames.")] = 20,
    greedy: Annotated[bool, typer.Option(help="Take the most likely action instead of sampling.")] = False,
    temperature: Annotated[float, typer.Option(help="Divide the policy's logits by this before sampling "
                                                    "(below 1: sharper, still sampled).")] = 1.0,
    release_held: Annotated[bool, typer.Option(help="Let go of a button held longer than 99% of the presses in "
                                                    "the policy's training labels (limits in model.pt).")] = False,
    workers: Annotated[int, typer.Option(help="Emulator processes (0: one per CPU core).")] = 0,
    videos: Annotated[int, typer.Option(help="Episodes per game to save as mp4.")] = 1,
    seed: Annotated[int, typer.Option(help="Base seed of the episodes (the same for every policy).")] = 0,
) -> None:
    """Evaluate one policy: seeded rollouts in the emulator (+ offline accuracy and F1 for a model)."""
    from swag.policy import AgentSpec
    from swag.rollout import demonstrated_actions, evaluate_vpt, parse_game

    if not temperature > 0:
        raise SwagError(f"--temperature {temperature} must be > 0 (--greedy takes the most likely action)")
    game_levels = [parse_game(text) for text in game]
    actions = demonstrated_actions(actions_from) if agent == "random" and actions_from else None
    spec = AgentSpec(agent, name, checkpoint=str(checkpoint) if checkpoint else None, greedy=greedy,
                     temperature=temperature, release_held=release_held, actions=actions, style=style)
    result = evaluate_vpt(spec, game_levels, episodes, max_steps, fps, out,
                          index_path=index if agent == "model" else None, workers=workers or None, videos=videos,
                          seed=seed)
    for key, summary in result["games"].items():
        log.info("%s on %s: progress mean %.3f, median %.3f", name, key, summary["progress_mean"],
                 summary["progress_median"])
    if "offline" in result:
        log.info("%s offline: action accuracy %.3f, button F1 %.3f", name, result["offline"]["action_accuracy"],
                 result["offline"]["button_f1_macro"] or float("nan"))


@app.command("results-table")
def results_table_command(
    results: Annotated[list[Path], typer.Argument(help="Per-policy results JSON files from `swag evaluate-vpt`.")],
    out: Annotated[Path, typer.Option(help="Output prefix: writes OUT.json, OUT.md and OUT.png.")],
) -> None:
    """The result table: policies x (games x metrics), as JSON, markdown and a bar plot."""
    from swag.results import write_table

    table = write_table(results, out)
    log.info("%s.md: %d policies, %d columns", out, len(table["rows"]), len(table["columns"]))


@app.command("train-idm")
def train_idm_command(
    config: Annotated[Path, typer.Option(help="Pipeline config YAML; its `idm` section sets the model and training.")],
    index: Annotated[Path, typer.Option(help="Dataset index of labelled recordings, e.g. results/index/idm.json; "
                                             "trains on its `train` split.")],
    out: Annotated[Path, typer.Option(help="Output folder: model.pt, checkpoint.pt, train_log.json, curves.png, runs/.")],
) -> None:
    """Train the inverse dynamics model (non-causal) on labelled recordings.

    SIGTERM checkpoints and exits with 143; rerunning the same command resumes. Under
    `torchrun --nproc_per_node=N -m swag.cli train-idm ...` it trains with DDP.
    """
    from swag.train import configs_from_yaml, train_idm

    model_config, training_config = configs_from_yaml(config, "idm")
    if model_config.causal:
        raise SwagError(f"{config}: idm.model.causal must be false (the IDM sees future frames)")
    summary = train_idm(index, model_config, training_config, out)
    log.info("%s: %d steps, best validation loss %s", out, summary["steps"], summary["best_val_loss"])


# shared by evaluate-idm and label, which must window a video the same way
WindowBatch = Annotated[int, typer.Option(help="Windows per forward pass.")]
LabelContext = Annotated[Optional[int], typer.Option(help="Frames of past and future around each window's labelled "
                                                          "centre (default 3/16 of the window).")]


@app.command("evaluate-idm")
def evaluate_idm_command(
    model: Annotated[Path, typer.Option(help="IDM model.pt from `swag train-idm`.")],
    index: Annotated[Path, typer.Option(help="Dataset index with held-out splits (actions or truth stores).")],
    out: Annotated[Path, typer.Option(help="Output folder: idm_eval.json, confusion_<split>.png, f1_<split>.png.")],
    split: Annotated[list[str], typer.Option(help="Index split to evaluate; repeatable.")] = ["test", "unseen_style"],
    batch_size: WindowBatch = 16,
    context: LabelContext = None,
) -> None:
    """Score the IDM on held-out recordings: exact match, per-button and onset F1, visibility ceiling."""
    from swag.evaluate import evaluate_idm

    results = evaluate_idm(model, index, out, tuple(split), batch_size, context=context)
    for name, result in results["splits"].items():
        f1 = " ".join(f"{button} {s['f1']:.3f}" for button, s in result["buttons"].items() if s["support"])
        log.info("%s: %d frames, exact match %.3f, F1 %s", name, result["frames"], result["exact_match"], f1)


@app.command("label")
def label_command(
    video: Annotated[Path, typer.Argument(help="Video store (results/zarr/{dataset}/{game}/{episode}.zarr).")],
    model: Annotated[Path, typer.Option(help="IDM model.pt from `swag train-idm`.")],
    out: Annotated[Path, typer.Option(help="Labels store to write (results/labels/{dataset}/{game}/{episode}.zarr).")],
    batch_size: WindowBatch = 16,
    context: LabelContext = None,
) -> None:
    """Label one video store with the IDM (actions, per-button probabilities, confidence).

    Resumable: an interrupted job leaves OUT.partial; rerunning continues after the last batch.
    SIGTERM finishes the batch and exits with 143.
    """
    from tqdm import tqdm

    from swag.label import label_store

    with tqdm(desc="label", unit="batch") as bar:
        def on_batch(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)  # redraws at the bar's interval, not at every batch

        label_store(video, model, out, batch_size, on_batch=on_batch, context=context)
    log.info("%s: labelled %s", out, video)


@app.command("stage-config")
def stage_config_command(
    out: Annotated[Path, typer.Argument(help="Stage config file to write (results/config/{stage}.yaml).")],
    stage: Annotated[str, typer.Option(help="idm, vpt or finetune.")],
    section: Annotated[str, typer.Option(help="The stage's {model, training} section (finetune: {target, model}), "
                                              "as JSON.")],
) -> None:
    """Write one stage's validated settings as a YAML file (used by the workflow)."""
    import json

    import yaml

    from swag import config as swag_config
    from swag.store import atomic_store_path

    values = json.loads(section)
    with atomic_store_path(out) as temp:
        temp.write_text(yaml.safe_dump(values, sort_keys=False))
        # an invalid section never reaches `out`
        if stage == "finetune":
            swag_config.load_finetune(temp)
        else:
            swag_config.load_stage(temp, stage)


def run() -> None:
    """Entry point: turns SwagError into `swag: error: …` and exit code 1. Typer handles the rest
    in its standalone mode: a usage error prints the usage and exits 2, Ctrl-C exits 130."""
    try:
        app()
    except SwagError as error:
        print(f"swag: error: {error}", file=sys.stderr)
        sys.exit(1)
    except TrainingInterrupted as stop:  # training and labelling checkpoint on SIGTERM
        print(f"swag: {stop}; rerun the same command to resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    run()
