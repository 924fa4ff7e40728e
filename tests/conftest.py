"""Shared test setup."""

import re

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared CPU: extra OpenMP threads only spin against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def progress_draws():
    """How often a command drew its progress bar `desc` into stderr, a pipe as a job's log file is:
    each draw starts a line or a carriage return with the bar's description."""
    def draws(stderr: str, desc: str) -> list[str]:
        return [part for part in re.split(r"[\r\n]", stderr) if part.startswith(desc)]

    return draws
