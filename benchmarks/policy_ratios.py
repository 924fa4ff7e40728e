"""The VPT-policy issue's ratios over many episodes: each policy's mean progress as a multiple of
random's and of oracle-BC's, with bootstrap intervals, pooled over several seed sets.

    python benchmarks/policy_ratios.py OUT --policy vpt=results/policies/vpt/model.pt \
        --policy oracle-bc=results/policies/oracle-bc/model.pt --actions-from results/index/idm.json \
        --game smb1:1-1 --episodes 24 --seeds 0 1000 --temperature 0.5 --release-held

The DAG's `evaluate_vpt` plays 8 episodes, too few to tell 2.5x random from 3x (one episode's
progress spreads over 0.1-1.0). This runs `swag evaluate-vpt` once per policy and seed set into
OUT/NAME_T{temperature}_{release}_s{seed}/ (random: OUT/random_s{seed}/), skipping those already
there, and prints one table. The intervals resample each policy's episodes independently (5,000
draws); `P(≥ 3x)` is the share of draws whose ratio to random reaches the issue's 3x.

One training's score moves with its training seed by more than its episodes' standard error
(docs/experiments.md, "bf16 on the CPU"), so a NAME given more than once pools those trainings into one row:
`--policy vpt=seed0/model.pt --policy vpt=seed1/model.pt`. The second and later play into
OUT/NAME_2_..., and their draws resample the trainings too (with replacement, then each drawn
training's episodes), so the interval carries the training seed's spread as well as the episodes'.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from swag.results import bootstrap_means  # noqa: E402

TARGET_VS_RANDOM = 3.0  # the VPT-policy issue's targets
TARGET_VS_ORACLE = 0.9


def run_dir(out: Path, name: str, seed: int, temperature: float, release_held: bool) -> Path:
    if name == "random":
        return out / f"random_s{seed}"
    release = "release-held" if release_held else "no-release-held"
    return out / f"{name}_T{temperature:g}_{release}_s{seed}"


def evaluate(folder: Path, name: str, args: argparse.Namespace, seed: int, checkpoint: str | None) -> None:
    """One `swag evaluate-vpt` run, unless its results are already in `folder`."""
    if (folder / f"{name}.json").exists():
        return
    command = [sys.executable, "-m", "swag", "evaluate-vpt", str(folder), "--name", name, "--game", args.game,
               "--episodes", str(args.episodes), "--seed", str(seed), "--videos", "0"]
    if checkpoint is None:
        command += ["--agent", "random", "--actions-from", str(args.actions_from)]
    else:
        command += ["--checkpoint", checkpoint, "--temperature", str(args.temperature),
                    "--release-held" if args.release_held else "--no-release-held"]
    print(" ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def progress(folder: Path, name: str, game: str) -> np.ndarray:
    result = json.loads((folder / f"{name}.json").read_text())
    return np.array([episode["progress"] for episode in result["games"][game]["per_episode"]])


def table(progress_by_name: dict[str, np.ndarray | list[np.ndarray]], seed: int = 0) -> list[dict]:
    """One row per policy: episodes, mean, standard error over the episodes, each training's mean
    when there are several, and its ratios to random and oracle-bc (point, 90% interval, share of
    draws at or over the issue's target). A value is one training's episodes or a list of them."""
    rng = np.random.default_rng(seed)
    trainings_by_name = {name: values if isinstance(values, list) else [values]
                         for name, values in progress_by_name.items()}
    rows = []
    for name, trainings in trainings_by_name.items():
        values = np.concatenate(trainings)
        row = {"policy": name, "episodes": len(values), "mean": float(values.mean()),
               "se": float(values.std(ddof=1) / np.sqrt(len(values)))}
        if len(trainings) > 1:
            row["training_means"] = [float(episodes.mean()) for episodes in trainings]
        for baseline, target in (("random", TARGET_VS_RANDOM), ("oracle-bc", TARGET_VS_ORACLE)):
            if name in (baseline, "random") or baseline not in trainings_by_name:
                continue
            baseline_values = np.concatenate(trainings_by_name[baseline])
            draws = bootstrap_means(trainings, rng) / bootstrap_means(trainings_by_name[baseline], rng)
            row[f"vs_{baseline}"] = {
                "ratio": float(values.mean() / baseline_values.mean()),
                "interval_90": [float(np.quantile(draws, 0.05)), float(np.quantile(draws, 0.95))],
                "p_at_target": float((draws >= target).mean()),
            }
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    def ratio(row, baseline):
        if f"vs_{baseline}" not in row:
            return "–"
        r = row[f"vs_{baseline}"]
        low, high = r["interval_90"]
        return f"{r['ratio']:.2f} ({low:.2f}–{high:.2f}; P ≥ target {r['p_at_target']:.2f})"

    def trainings(row):
        return " / ".join(f"{mean:.3f}" for mean in row.get("training_means", [row["mean"]]))

    lines = ["| policy | episodes | mean progress (± SE) | each training's mean | × random (90% interval) "
             "| × oracle-bc (90% interval) |",
             "|---|---:|---:|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['policy']} | {row['episodes']} | {row['mean']:.3f} (± {row['se']:.3f}) | "
                     f"{trainings(row)} | {ratio(row, 'random')} | {ratio(row, 'oracle-bc')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the evaluate-vpt runs (reused if there)")
    parser.add_argument("--policy", action="append", default=[], metavar="NAME=MODEL.PT",
                        help="a policy to play; repeatable (name oracle-bc for the ratio to it; "
                             "a NAME given again pools its trainings into one row)")
    parser.add_argument("--actions-from", type=Path, default=Path("results/index/idm.json"),
                        help="the random agent draws from the pad bytes this index's labelled play pressed")
    parser.add_argument("--game", default="smb1:1-1")
    parser.add_argument("--episodes", type=int, default=24, help="episodes per seed set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1000], help="base seed of each set")
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--release-held", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    checkpoints = {"random": [None]}
    for text in args.policy:
        name, sep, path = text.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"--policy {text}: expected NAME=MODEL.PT with an existing file")
        checkpoints.setdefault(name, []).append(path)

    progress_by_name = {}
    for name, paths in checkpoints.items():
        progress_by_name[name] = []
        for index, checkpoint in enumerate(paths):
            label = name if index == 0 else f"{name}_{index + 1}"
            pooled = []
            for seed in args.seeds:
                folder = run_dir(args.out, label, seed, args.temperature, args.release_held)
                evaluate(folder, label, args, seed, checkpoint)
                pooled.append(progress(folder, label, args.game))
            progress_by_name[name].append(np.concatenate(pooled))

    rows = table(progress_by_name)
    (args.out / "ratios.json").write_text(json.dumps(rows, indent=2) + "\n")
    release = "release_held" if args.release_held else "as sampled"
    print(f"{args.game}, seeds {args.seeds} x {args.episodes} episodes, T = {args.temperature:g}, {release}")
    print(markdown(rows))


if __name__ == "__main__":
    main()
