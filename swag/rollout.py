"""Online evaluation: seeded episodes of agents in the real emulator, the game's progress measure.

One episode (`run_episode`):
    frame, info = env.reset(seed)                       frame 0: the screen before action 0
    for each policy step k < max_steps:                  the policy acts at `fps` (e.g. 20 Hz)
        action = agent.act(frame, info)                  frame: the full 256x240 screen; a ModelAgent
                                                         downscales it as `swag convert` does
        hold the action for the emulator frames [floor(k r), floor((k+1) r)), r = 60 / fps,
        the same frames `swag.actions.frame_spans` gives target step k when converting
        stop early when the game ends the episode (SMB: death or flag; Tetris: top-out)
The demonstrator (`acts_every_frame`) instead picks an action at every emulator frame, as it
did when it made the data. Progress is `info["progress"]` of the last step (swag.games).

Parallelism: whole episodes run in worker processes (`concurrent.futures.ProcessPoolExecutor`,
spawned, one emulator and one copy of each agent per worker, torch threads = 1). Episodes are
independent and the policy is small, so nothing crosses process boundaries per step: no frame
IPC, no lock-step between emulators, and results do not depend on the number of workers. The
alternative, batching all emulators' frames through one model in the parent, pays off only
when a large model needs a GPU; with the cached context a step of the demo policy costs about
what the three emulator frames behind it cost (benchmarks/bench_policy.py).

Results per policy: `{out_dir}/{policy}.json` (format below, see `summarize`) and an mp4
(H.264, 60 fps, full resolution) of the first `videos` episodes per game.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from swag import games
from swag.actions import BUTTONS, NUM_BUTTONS, to_multihot
from swag.errors import SwagError
from swag.games import NES_FPS
from swag.policy import AgentSpec, make_agent

log = logging.getLogger(__name__)

RESULTS_FORMAT = "swag-rollouts"


def parse_game(text: str) -> tuple[str, str | None]:
    """"smb1:1-1" -> ("smb1", "1-1"); "tetris-a" -> ("tetris-a", None). Checks the game exists."""
    game, _, level = text.partition(":")
    spec = games.get(game)  # raises GameError (a SwagError) for an unknown game
    if level and level not in spec.levels:
        raise SwagError(f"game {game} has no level {level!r}")
    return game, (level or None)


def game_key(game: str, level: str | None) -> str:
    return f"{game}:{level}" if level else game


def episode_seed(base_seed: int, game: str, level: str | None, index: int) -> int:
    """The seed of episode `index` on one game: the same for every policy, so they face the
    same episodes (matters where the game is random, e.g. Tetris pieces)."""
    import hashlib

    digest = hashlib.sha1(f"{base_seed}/{game_key(game, level)}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def hold_lengths(max_steps: int, fps: float) -> np.ndarray:
    """int (max_steps,): emulator frames each policy step holds its action (60/fps on average)."""
    if not 0 < fps <= NES_FPS:
        raise SwagError(f"policy fps must be in (0, {NES_FPS}], got {fps}")
    ratio = NES_FPS / fps
    edges = np.floor(np.arange(max_steps + 1) * ratio + 1e-9).astype(np.int64)
    return np.diff(edges)


# --- video ------------------------------------------------------------------------------------------


class VideoWriter:
    """Streams RGB frames to an H.264 mp4 (yuv420p, so browsers and the report play it).

    Written to PATH.tmp-<pid> and renamed into place on `close()`; `abort()` removes it.
    """

    def __init__(self, path, fps: float, crf: int = 23):
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self.container = av.open(str(self.temp), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=int(round(fps)))
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import av

        if self.frames == 0:
            self.stream.height, self.stream.width = frame.shape[:2]
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.temp, self.path)

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - already broken; removing the file is all that is left
            pass
        self.temp.unlink(missing_ok=True)


# --- one episode ---------------------------------------------------------------------------------


# Per worker process: emulators by (game, level) and agents by (spec, game), built once.
_ENVS: dict = {}
_AGENTS: dict = {}


def _env(game: str, level: str | None):
    key = (game, level)
    if key not in _ENVS:
        _ENVS[key] = games.make(game, level)
    return _ENVS[key]


def _agent(spec: AgentSpec, game: str):
    key = (json.dumps(asdict(spec), sort_keys=True), game)
    if key not in _AGENTS:
        _AGENTS[key] = make_agent(spec, game)
    return _AGENTS[key]


@dataclass
class Episode:
    """One episode to play (picklable: it travels to a worker)."""

    spec: AgentSpec
    game: str
    level: str | None
    index: int
    seed: int
    max_steps: int
    fps: float
    video: str | None = None


def run_episode(episode: Episode, agent=None, env=None, on_frame=None) -> dict:
    """Play one episode; the game's progress summary plus steps, frames, button press rates.

    `on_frame(action, info)`, when given, is called after every emulator frame with the pad byte
    held and the info that frame returned: for diagnostics that need more than the summary
    (benchmarks/jump_holds.py)."""
    env = env if env is not None else _env(episode.game, episode.level)
    agent = agent if agent is not None else _agent(episode.spec, episode.game)
    holds = hold_lengths(episode.max_steps, episode.fps)
    video = VideoWriter(episode.video, NES_FPS) if episode.video else None
    frame, info = env.reset(seed=episode.seed)
    agent.reset(episode.seed, env, info)
    presses = np.zeros(NUM_BUTTONS, np.int64)
    steps = frames = 0
    ended = False
    try:
        for hold in holds:
            if not agent.acts_every_frame:
                action = agent.act(frame, info)
            for _ in range(hold):
                if agent.acts_every_frame:
                    action = agent.act(frame, info)
                if video is not None:
                    video.write(frame)
                presses += to_multihot(action)
                frame, _, terminated, truncated, info = env.step(action)
                frames += 1
                if on_frame is not None:
                    on_frame(action, info)
                if terminated or truncated:
                    ended = True
                    break
            steps += 1
            if ended:
                break
        if video is not None:
            video.write(frame)  # the last screen, where the episode ended
            video.close()
    except BaseException:
        if video is not None:
            video.abort()
        raise
    rates = presses / max(frames, 1)
    return {
        **{key: float(value) for key, value in info["progress"].items()},
        "episode": episode.index,
        "seed": episode.seed,
        "steps": steps,
        "frames": frames,
        "ended": ended,
        "button_rates": {name: float(rate) for name, rate in zip(BUTTONS, rates)},
        "video": episode.video,
    }


def _worker_init() -> None:
    # One emulator per worker and a small model: more threads only fight the other workers.
    # Set through the environment, so that workers of agents without a model never import torch
    # (seconds per worker at start-up); a model agent's torch reads it when first imported.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _run(episode: Episode) -> tuple[Episode, dict]:
    return episode, run_episode(episode)


# --- many episodes, many policies --------------------------------------------------------------


def summarize(episodes: list[dict]) -> dict:
    """Aggregate one policy's episodes on one game.

    progress_mean/median/std over episodes of `progress` (SMB: fraction of the level reached,
    clear = 1; Tetris: lines; Zelda: screens), and `<key>_mean` for every other number the
    game's tracker reports (SMB: clear_mean is the clear rate, deaths_mean; Tetris: lines, score).
    """
    episodes = sorted(episodes, key=lambda e: e["episode"])
    progress = np.array([e["progress"] for e in episodes], dtype=np.float64)
    summary = {
        "episodes": len(episodes),
        "progress_mean": float(progress.mean()),
        "progress_median": float(np.median(progress)),
        "progress_std": float(progress.std()),
    }
    skip = {"progress", "episode", "seed", "ended", "button_rates", "video"}
    for key in episodes[0]:
        if key not in skip and isinstance(episodes[0][key], (int, float)):
            summary[f"{key}_mean"] = float(np.mean([e[key] for e in episodes]))
    summary["button_rates"] = {name: float(np.mean([e["button_rates"][name] for e in episodes]))
                               for name in BUTTONS}
    summary["videos"] = [e["video"] for e in episodes if e["video"]]
    summary["per_episode"] = episodes
    return summary


def evaluate_agents(specs: list[AgentSpec], game_levels: list[tuple[str, str | None]], episodes: int,
                    max_steps: int, fps: float, workers: int | None = None, out_dir=None,
                    videos: int = 1, seed: int = 0, show_progress: bool = True) -> dict[str, dict]:
    """Play `episodes` seeded episodes of every game with every agent; results by policy name.

    Writes `{out_dir}/{name}.json` per policy and `{out_dir}/videos/{name}_{game}_{i}.mp4` for
    the first `videos` episodes of each game, when `out_dir` is given.
    """
    from tqdm import tqdm

    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise SwagError(f"policy names must be distinct, got {names}")
    if episodes < 1 or max_steps < 1:
        raise SwagError(f"need at least one episode and one step, got episodes={episodes}, max_steps={max_steps}")
    out_dir = Path(out_dir) if out_dir is not None else None
    for spec in specs:  # fail here, with a clear message, rather than in every worker
        for game, _ in game_levels:
            if spec.kind == "model":
                _check_checkpoint(spec)
            else:
                make_agent(spec, game)
    jobs = []
    for spec in specs:
        for game, level in game_levels:
            for index in range(episodes):
                video = None
                if out_dir is not None and index < videos:
                    video = str(out_dir / "videos" / f"{spec.name}_{game_key(game, level).replace(':', '_')}_{index}.mp4")
                jobs.append(Episode(spec, game, level, index, episode_seed(seed, game, level, index),
                                    max_steps, fps, video))
    workers = min(workers or available_cores(), len(jobs))
    done: dict[tuple[str, str], list[dict]] = {}
    bar = tqdm(total=len(jobs), desc="rollouts", unit="episode", disable=not show_progress)
    if workers <= 1:  # in this process, with the caller's torch threads
        for job in jobs:
            done.setdefault((job.spec.name, game_key(job.game, job.level)), []).append(run_episode(job))
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")  # no forked torch/emulator state
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
            futures = [pool.submit(_run, job) for job in jobs]
            for future in as_completed(futures):
                job, result = future.result()
                done.setdefault((job.spec.name, game_key(job.game, job.level)), []).append(result)
                bar.update()
    bar.close()
    results = {}
    for spec in specs:
        results[spec.name] = {
            "format": RESULTS_FORMAT,
            "format_version": 1,
            "policy": spec.name,
            "agent": asdict(spec),
            "fps": fps,
            "max_steps": max_steps,
            "episodes": episodes,
            "seed": seed,
            "games": {game_key(g, lv): {"game": g, "level": lv, **summarize(done[(spec.name, game_key(g, lv))])}
                      for g, lv in game_levels},
        }
        if out_dir is not None:
            write_json(out_dir / f"{spec.name}.json", results[spec.name])
    return results


def available_cores() -> int:
    """CPU cores this process may use: under SLURM the job's allocation, not the node's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _check_checkpoint(spec: AgentSpec) -> None:
    if spec.checkpoint is None or not Path(spec.checkpoint).is_file():
        raise SwagError(f"{spec.checkpoint}: checkpoint of policy {spec.name} not found")


def write_json(path, value) -> None:
    """Write JSON atomically (temp file, then rename)."""
    from swag.store import atomic_write_text

    atomic_write_text(json.dumps(value, indent=2, sort_keys=False) + "\n", path)


def read_results(path) -> dict:
    """A policy's results JSON, checked for the format."""
    from swag.store import read_json

    path = Path(path)
    value = read_json(path, "rollout results")
    if not isinstance(value, dict) or value.get("format") != RESULTS_FORMAT or "games" not in value:
        raise SwagError(f"{path}: not a swag rollout results file (format {RESULTS_FORMAT!r})")
    return value



# --- offline: the policy's action accuracy on held-out recordings with true labels ------------------


def offline_metrics(model, store_paths: list[str], label_paths: list[str], batch_windows: int = 8) -> dict:
    """Greedy predictions of a causal policy on held-out recordings against their true actions.

    Each store is cut into consecutive, non-overlapping windows of `sequence_length` frames (the
    last one shorter), as the policy sees them in training, so action t is predicted from the
    frames of its window up to t (and, for a policy with `previous_buttons`, the true action before
    each frame, as in training). Scored by swag.evaluate.metrics (the IDM's metrics: exact match,
    per-button precision/recall/F1, onset F1, SMB's A-visibility), plus `action_accuracy` (= the
    exact match) and `button_f1_macro` over the buttons pressed or predicted at least once.
    """
    import torch

    from swag.data import load_labels
    from swag.evaluate import a_visible, metrics
    from swag.model import autocast
    from swag.store import open_store

    length = model.config.sequence_length
    device = next(model.parameters()).device
    truth, predicted, visible = [], [], []
    for store_path, label_path in zip(store_paths, label_paths):
        store = open_store(store_path)
        actions, _ = load_labels(store, label_path)
        starts = list(range(0, len(store), length))
        held_before = np.concatenate([[0], np.asarray(actions, np.int64)[:-1]])  # (T,) the byte held before each frame
        store_predictions = []
        for first in range(0, len(starts), batch_windows):
            windows = [np.asarray(store.frames[s:s + length]) for s in starts[first:first + batch_windows]]
            previous = [held_before[s:s + length] for s in starts[first:first + batch_windows]]
            for size in dict.fromkeys(len(w) for w in windows):  # the short last window goes alone, in order
                batch = torch.from_numpy(np.stack([w for w in windows if len(w) == size])).to(device)
                before = torch.from_numpy(np.stack([p for p in previous if len(p) == size])).to(device)
                with torch.no_grad(), autocast(device):
                    logits, _ = model(batch, previous=before)
                store_predictions.append(model.predict(logits)[0].cpu().numpy().reshape(-1))
        truth.append(np.asarray(actions, np.uint8))
        predicted.append(np.concatenate(store_predictions).astype(np.uint8))
        visible.append(a_visible(actions, store.info["y_pos"][:]) if "y_pos" in store.info else None)
    if not truth:
        raise SwagError("offline evaluation: no held-out recordings")
    result = metrics(truth, predicted, visible)
    used = [b["f1"] for b in result["buttons"].values() if b["support"] or b["fp"]]
    result["action_accuracy"] = result["exact_match"]
    result["button_f1_macro"] = float(np.mean(used)) if used else None
    return result


def demonstrated_actions(index_path) -> dict[str, list[int]]:
    """Per game, the distinct pad bytes in the true actions of an index's `train` recordings: the
    random baseline's action set. Pass the labelled play's index (idm), so the baseline depends on
    the games and the demonstrators, never on how well the IDM labels. Coverage play (the index's
    `train_only_styles`) is left out: it presses what players do not (the explorer's left with B and
    A), and with it the baseline fell from 0.195 to 0.110 progress on SMB 1-1."""
    from swag.data import index_stores, read_index
    from swag.store import open_store

    index = read_index(index_path)
    coverage_styles = set(index.get("train_only_styles", []))
    seen: dict[str, set[int]] = {}
    for entry in index_stores(index, "train"):
        if entry.get("style") in coverage_styles:
            continue
        actions = open_store(entry["path"], need_frames=False).actions
        if actions is None:
            raise SwagError(f"{entry['path']}: no true actions (the random agent needs an index of labelled play)")
        seen.setdefault(entry["game"], set()).update(np.unique(actions[:]).tolist())
    if not seen:
        raise SwagError(f"{index_path}: no training recordings to draw random actions from")
    return {game: sorted(int(a) for a in actions) for game, actions in sorted(seen.items())}


def evaluate_vpt(spec: AgentSpec, game_levels, episodes: int, max_steps: int, fps: float, out_dir,
                 index_path=None, workers: int | None = None, videos: int = 1, seed: int = 0,
                 show_progress: bool = True) -> dict:
    """One policy: online rollouts on every game, plus (for a model, given the index) offline
    metrics on the held-out `test` and `unseen_style` recordings with their true actions.
    Writes `{out_dir}/{spec.name}.json`."""
    from swag.data import index_stores, read_index
    from swag.policy import load_model, policy_labels

    result = evaluate_agents([spec], game_levels, episodes, max_steps, fps, workers, out_dir=out_dir,
                             videos=videos, seed=seed, show_progress=show_progress)[spec.name]
    if spec.kind == "model" and index_path is not None:
        index = read_index(index_path)
        import torch

        # offline scoring batches whole windows: worth a GPU when there is one (rollouts stay on CPU)
        model = load_model(spec.checkpoint, "cuda" if torch.cuda.is_available() else "cpu")
        offline = {}
        for split in ("test", "unseen_style"):
            entries = index_stores(index, split)
            if entries:
                offline[split] = offline_metrics(model, [e["path"] for e in entries], policy_labels(entries, "truth"))
        if offline:
            main = offline.get("test") or next(iter(offline.values()))
            result["offline"] = {"action_accuracy": main["action_accuracy"],
                                 "button_f1_macro": main["button_f1_macro"], "splits": offline}
    write_json(Path(out_dir) / f"{spec.name}.json", result)
    return result
