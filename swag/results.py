"""The result table: policies (rows) against games x metrics (columns), from rollout results.

Inputs are the per-policy JSON files `swag evaluate-vpt` writes (format "swag-rollouts", see
swag.rollout), optionally with an `offline` section (action accuracy and per-button F1 on
held-out recordings with true labels). Outputs, for the Snakemake report:

    OUT.json   {"columns": [{"game", "metric", "label"}...], "rows": [{"policy", "values": {label: x}}...],
                "ratios": {"vs BASE": {game: {policy: progress_mean / BASE's}}},
                "ratio_intervals": {"vs BASE": {game: {policy: [low, high]}}}, "sources": [...]}
    OUT.md     the same as a markdown table, then the ratios with their intervals
    OUT.png    bar plot: mean progress per policy, one panel per game (error bars: std over episodes,
               black dots: median, grey dots: each episode)

Rows are ordered random, VPT, oracle-BC, demonstrator, then the fine-tuned policies of each target
(vpt-bc-ft-T, vpt-rl-ft-T, rl-scratch-T, as the workflow names them), then any others by name.
Ratios: every policy's mean progress against random's and oracle-BC's, and the fine-tuned ones'
against the VPT policy they started from. A ratio's interval is the 90% bootstrap interval over
both policies' episodes (each resampled with replacement): a DAG's evaluation plays few episodes,
and one episode's progress spreads over most of the level. It does not include the spread over
training seeds, which for these small policies is larger (docs/experiments.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from swag.errors import SwagError
from swag.rollout import read_results
from swag.store import atomic_save_figure, atomic_write_text

ROW_ORDER = ("random", "vpt", "oracle-bc", "demonstrator")
FINETUNED_PREFIXES = ("vpt-bc-ft-", "vpt-rl-ft-", "rl-scratch-")

# per-game metrics, in column order: summary key -> column label (only those a game reports)
METRICS = (
    ("progress_mean", "progress mean"),
    ("progress_median", "progress median"),
    ("clear_mean", "clear rate"),
    ("deaths_mean", "deaths"),
    ("lines_mean", "lines"),
    ("screens_mean", "screens"),
)
OFFLINE_METRICS = (("action_accuracy", "action accuracy"), ("button_f1_macro", "button F1 (macro)"))
BOOTSTRAP_DRAWS = 5000


def bootstrap_means(trainings: list[np.ndarray], rng: np.random.Generator, draws: int = BOOTSTRAP_DRAWS) -> np.ndarray:
    """(draws,): the mean progress of resampled play. Each draw picks len(trainings) trainings with
    replacement (one training: always it), then each one's episodes with replacement."""
    episode_means = np.stack([rng.choice(episodes, size=(draws, len(episodes))).mean(axis=1)
                              for episodes in trainings])                      # (trainings, draws)
    if len(trainings) == 1:
        return episode_means[0]
    picks = rng.integers(0, len(trainings), size=(draws, len(trainings)))     # (draws, trainings)
    return episode_means[picks, np.arange(draws)[:, None]].mean(axis=1)


def ratio_interval(numerator: list[float], denominator: list[float], seed: int = 0) -> list[float] | None:
    """The 90% bootstrap interval of mean(numerator) / mean(denominator), episodes resampled on both
    sides; None when either side has no episodes or the denominator's draws can be zero."""
    if not numerator or not denominator:
        return None
    rng = np.random.default_rng(seed)
    denominators = bootstrap_means([np.asarray(denominator, dtype=float)], rng)
    if (denominators <= 0).any():
        return None
    draws = bootstrap_means([np.asarray(numerator, dtype=float)], rng) / denominators
    return [float(np.quantile(draws, 0.05)), float(np.quantile(draws, 0.95))]


def _row_rank(name: str) -> tuple[int, str, int]:
    lowered = name.lower()
    for rank, key in enumerate(ROW_ORDER):
        if lowered == key:
            return rank, "", 0
    for rank, prefix in enumerate(FINETUNED_PREFIXES):
        if lowered.startswith(prefix):  # grouped by target, in BC, RL, scratch order
            return len(ROW_ORDER), lowered.removeprefix(prefix), rank
    return len(ROW_ORDER) + 1, lowered, 0


def build_table(result_paths, reference: str = "random", ceiling: str = "oracle-bc") -> dict:
    """The table from per-policy rollout results; see the module docstring."""
    results = [read_results(path) for path in result_paths]
    if not results:
        raise SwagError("results table: no rollout results given")
    names = [r["policy"] for r in results]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise SwagError(f"results table: policy {duplicate!r} appears in more than one results file")
    results.sort(key=lambda r: _row_rank(r["policy"]))
    games = []
    for result in results:
        games += [g for g in result["games"] if g not in games]
    columns = []
    for game in games:
        reported = set().union(*(r["games"][game].keys() for r in results if game in r["games"]))
        columns += [{"game": game, "metric": key, "label": f"{game} {label}"}
                    for key, label in METRICS if key in reported]
    if any("offline" in r for r in results):
        columns += [{"game": "offline", "metric": key, "label": label} for key, label in OFFLINE_METRICS]
    rows = []
    for result in results:
        values = {}
        for column in columns:
            if column["game"] == "offline":
                value = result.get("offline", {}).get(column["metric"])
            else:
                value = result["games"].get(column["game"], {}).get(column["metric"])
            values[column["label"]] = None if value is None else float(value)
        rows.append({"policy": result["policy"], "values": values,
                     "episodes": {g: result["games"][g]["episodes"] for g in result["games"]},
                     "progress_std": {g: result["games"][g]["progress_std"] for g in result["games"]},
                     # every episode's progress, in episode order: where a policy's episodes end
                     # (one hazard that kills most of them, or a spread) is not in the mean
                     "progress_episodes": {g: [float(e["progress"]) for e in result["games"][g].get("per_episode", [])]
                                           for g in result["games"]}})
    ratios, intervals = {}, {}
    episodes_of = {row["policy"]: row["progress_episodes"] for row in rows}
    for base in (reference, ceiling, "vpt"):
        base_result = next((r for r in results if r["policy"].lower() == base), None)
        if base_result is None:
            continue
        for game in games:
            denominator = base_result["games"].get(game, {}).get("progress_mean")
            for result in results:
                numerator = result["games"].get(game, {}).get("progress_mean")
                if numerator is None or not denominator or result is base_result:
                    continue
                if base == "vpt" and not result["policy"].lower().startswith(FINETUNED_PREFIXES):
                    continue
                ratios.setdefault(f"vs {base}", {}).setdefault(game, {})[result["policy"]] = numerator / denominator
                intervals.setdefault(f"vs {base}", {}).setdefault(game, {})[result["policy"]] = ratio_interval(
                    episodes_of[result["policy"]].get(game, []), episodes_of[base_result["policy"]].get(game, []))
    settings = {(r["fps"], r["max_steps"]) for r in results}
    return {"columns": columns, "rows": rows, "ratios": ratios, "ratio_intervals": intervals,
            "settings": [{"fps": fps, "max_steps": steps} for fps, steps in sorted(settings)],
            "sources": [str(p) for p in result_paths]}


def _format(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"


def to_markdown(table: dict) -> str:
    labels = [c["label"] for c in table["columns"]]
    lines = ["| policy | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in table["rows"]:
        lines.append(f"| {row['policy']} | " + " | ".join(_format(row["values"][label]) for label in labels) + " |")

    def ratio(base, game, policy, value):
        interval = table.get("ratio_intervals", {}).get(base, {}).get(game, {}).get(policy)
        return f"{policy} {value:.2f}x" + (f" ({interval[0]:.2f}–{interval[1]:.2f})" if interval else "")

    for base, by_game in table["ratios"].items():
        lines += ["", f"Mean progress relative to {base.removeprefix('vs ')} (90% interval over episodes):", ""]
        for game, by_policy in by_game.items():
            lines.append(f"- {game}: " + ", ".join(ratio(base, game, p, r) for p, r in by_policy.items()))
    if table["settings"]:
        lines += ["", "Rollouts: " + "; ".join(f"{s['max_steps']} policy steps at {s['fps']:g} fps"
                                               for s in table["settings"]) + "."]
    return "\n".join(lines) + "\n"


def plot(table: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = [c["game"] for c in table["columns"] if c["metric"] == "progress_mean"]
    fig, axes = plt.subplots(1, max(len(games), 1), figsize=(3.2 * max(len(games), 1) + 1, 3.6), squeeze=False)
    policies = [row["policy"] for row in table["rows"]]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, game in zip(axes[0], games):
        means = [row["values"].get(f"{game} progress mean") for row in table["rows"]]
        medians = [row["values"].get(f"{game} progress median") for row in table["rows"]]
        stds = [row["progress_std"].get(game, 0.0) for row in table["rows"]]
        x = range(len(policies))
        ax.bar(x, [m or 0.0 for m in means], yerr=stds, capsize=3,
               color=[colours[i % len(colours)] for i in x])
        for i, row in enumerate(table["rows"]):
            episodes = row["progress_episodes"].get(game, [])
            jitter = np.linspace(-0.25, 0.25, len(episodes)) if len(episodes) > 1 else np.zeros(len(episodes))
            ax.scatter(i + jitter, episodes, color="grey", alpha=0.6, s=6, zorder=2,
                       label="episode" if i == 0 and episodes else None)
        ax.scatter(x, [m or 0.0 for m in medians], color="black", zorder=3, s=12, label="median")
        ax.set_xticks(list(x), policies, rotation=30, ha="right")
        ax.set_title(game)
        ax.set_ylabel("progress (SMB: fraction of level)" if game.startswith("smb") else "progress")
    axes[0][0].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_table(result_paths, out_prefix) -> dict:
    """Write OUT.json, OUT.md and OUT.png (out_prefix without suffix); returns the table."""
    table = build_table(result_paths)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(table, indent=1) + "\n"), (".md", to_markdown(table))):
        atomic_write_text(text, out_prefix.with_name(out_prefix.name + suffix))
    plot(table, out_prefix.with_name(out_prefix.name + ".png"))
    return table
