"""The `swag` entry point: how bad invocations end (exit code, one clear message, no traceback), and how
its progress bars write into a log file."""

import os
import subprocess
import sys

SWAG = [sys.executable, "-m", "swag"]


def run_swag(*args):
    return subprocess.run([*SWAG, *map(str, args)], capture_output=True, text=True)


def test_help_lists_the_commands():
    done = run_swag("--help")
    assert done.returncode == 0
    for command in ("record", "convert", "train-idm", "label", "train-vpt", "evaluate-vpt"):
        assert command in done.stdout


def test_a_usage_error_prints_the_usage_and_exits_2():
    for args in [("evaluate-vpt",), ("evaluate-vpt", "out", "--name", "x", "--game", "smb1", "--no-such-option")]:
        done = run_swag(*args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert "Usage:" in done.stderr


def test_bad_input_is_one_line_and_exits_1(tmp_path):
    done = run_swag("evaluate-vpt", tmp_path / "out", "--name", "random", "--agent", "random", "--game", "pacman")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("swag: error: unknown game 'pacman'")
    assert not (tmp_path / "out").exists()


def test_a_temperature_of_zero_is_refused_before_any_rollout(tmp_path):
    done = run_swag("evaluate-vpt", tmp_path / "out", "--name", "vpt", "--checkpoint", tmp_path / "model.pt",
                    "--game", "smb1:1-1", "--temperature", "0")
    assert done.returncode == 1
    assert done.stderr.strip() == "swag: error: --temperature 0.0 must be > 0 (--greedy takes the most likely action)"
    assert not (tmp_path / "out").exists()


def test_an_unknown_precision_is_refused_before_any_work(tmp_path):
    done = subprocess.run([*SWAG, "label", str(tmp_path / "video.zarr"), "--model", str(tmp_path / "model.pt"),
                           "--out", str(tmp_path / "labels.zarr")], capture_output=True, text=True,
                          env={**os.environ, "SWAG_PRECISION": "half"})
    assert done.returncode == 1
    assert done.stderr.strip() == ("swag: error: environment variable SWAG_PRECISION must be auto, bf16 or fp32, "
                                   "got 'half'")
    assert not (tmp_path / "labels.zarr").exists()


def test_a_progress_bar_into_a_log_file_redraws_rarely(tmp_path, progress_draws):
    # stderr is a pipe here, as it is a file in a workflow job: the bar draws when it opens and
    # when it closes, not ten times a second (a 2-3 s recording would otherwise draw ~25 times)
    done = run_swag("record", "--game", "smb1", "--level", "1-1", "--style", "speedy", "--seed", 1,
                    "--max-frames", 1800, "--out", tmp_path / "episode")
    assert done.returncode == 0, done.stderr
    draws = progress_draws(done.stderr, "record ")
    assert 1 <= len(draws) <= 3, draws
