"""How a run is carried out: everything that is not part of a cell's key (docs/protocol.md section 9)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from robustad.errors import RobustadError

PRECISIONS = ("fp32", "bf16", "fp16")
EXECUTORS = ("local", "ray")
DEFAULT_RESAMPLES = 1000


def machine_cores() -> int:
    """The cores this process may run on: the default torch thread count of a run."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class RunSettings:
    """Where the data and weights are, which device and how many torch threads, how big a batch, what to save.

    ``threads`` is recorded in every row: CPU float reductions differ with the thread count, and sign-gradient
    attacks amplify the last bit, so the same cell, threads and machine reproduce a row bit for bit. The batch
    size changes nothing in a row (attacks evaluate their model one image at a time).
    """

    data_root: Path | None = None
    weights_file: Path | None = None
    device: str = "cpu"
    batch_size: int = 8
    threads: int = 1
    pixel_metrics: bool = True
    save_scores: Path | None = None
    save_examples: int = 0
    examples_dir: Path | None = None
    resamples: int = DEFAULT_RESAMPLES
    executor: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise RobustadError(f"--batch-size {self.batch_size}: expected an integer >= 1")
        if self.threads < 1:
            raise RobustadError(f"--threads {self.threads}: expected an integer >= 1")
        if self.save_examples < 0:
            raise RobustadError(f"--save-examples {self.save_examples}: expected an integer >= 0 (0: none)")
        if self.save_examples and self.examples_dir is None:
            raise RobustadError("--save-examples needs a folder for the examples")
        if self.resamples < 0:
            raise RobustadError(f"--resamples {self.resamples}: expected an integer >= 0 (0: no intervals)")
        if self.executor not in EXECUTORS:
            raise RobustadError(f"--executor {self.executor}: expected one of {', '.join(EXECUTORS)}")
        if self.ray_address is not None and self.executor != "ray":
            raise RobustadError(f"--ray-address {self.ray_address} needs --executor ray")
