"""How a run is carried out: everything that is not part of a cell's key (docs/protocol.md section 9)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from robustad.declaration import EXECUTORS, MAX_RESAMPLES, MAX_THREADS
from robustad.errors import RobustadError

DEVICE_TYPES = ("cpu", "cuda")
DEFAULT_RESAMPLES = 1000
GPU_CHUNK = 16  # the default chunk on a GPU: a guess, unmeasured (no GPU was lent to this project yet)


def machine_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The torch thread count of a run without ``--threads``: ``OMP_NUM_THREADS`` when set (how users, SLURM and
    Ray give a process its share, and what torch itself follows), else the cores this process may run on."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not given:
        return machine_cores()
    first = given.split(",")[0].strip()  # OpenMP allows a list of nested levels; the first is this level's
    if not first.isdigit() or not 1 <= int(first) <= MAX_THREADS:
        raise RobustadError(f"OMP_NUM_THREADS={given!r}: expected an integer between 1 and {MAX_THREADS} "
                            "(or unset it, or pass --threads)")
    return int(first)


def default_chunk(device: str) -> int:
    """Images per model call when ``--chunk`` is not given: 1 on a CPU (``benchmarks/bench_speed.py``: batching
    buys little on a few cores), ``GPU_CHUNK`` on a GPU, where one image leaves most of the device idle."""
    return 1 if device.startswith("cpu") else GPU_CHUNK


@dataclass(frozen=True)
class RunSettings:
    """Where the data and weights are, which device and how many torch threads, how big a batch, what to save.

    ``threads`` is recorded in every row: CPU float reductions differ with the thread count, and sign-gradient
    attacks amplify the last bit, so the same cell, threads and machine reproduce a row bit for bit. The batch
    size changes nothing in a row: models see the cell's canonical chunks (``Cell.chunk``), whatever the batch.
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
        if not 1 <= self.threads <= MAX_THREADS:
            raise RobustadError(f"--threads {self.threads}: expected an integer between 1 and {MAX_THREADS}")
        if not 0 <= self.resamples <= MAX_RESAMPLES:
            raise RobustadError(f"--resamples {self.resamples}: expected an integer between 0 (no intervals) and "
                                f"{MAX_RESAMPLES}")
        if self.save_examples < 0:
            raise RobustadError(f"--save-examples {self.save_examples}: expected an integer >= 0 (0: none)")
        if self.save_examples and self.examples_dir is None:
            raise RobustadError("--save-examples needs a folder for the examples")
        if self.executor not in EXECUTORS:
            raise RobustadError(f"--executor {self.executor}: expected one of {', '.join(EXECUTORS)}")
        if self.ray_address is not None and self.executor != "ray":
            raise RobustadError(f"--ray-address {self.ray_address} needs --executor ray")
        check_device(self.device, present=self.executor == "local")


def check_device(device: str, present: bool = True) -> None:
    """A one-line error unless ``device`` names a CPU or CUDA device, and with ``present`` one this machine has (Ray
    workers may have GPUs the driver lacks): otherwise every cell would fail on it, one by one."""
    import torch

    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise RobustadError(f"--device {device!r}: not a torch device; expected cpu, cuda or cuda:N") from None
    if chosen.type not in DEVICE_TYPES:
        raise RobustadError(f"--device {device!r}: robustad runs on cpu, cuda or cuda:N, not on {chosen.type}")
    if not present or chosen.type != "cuda":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise RobustadError(f"--device {device!r}: this machine has no CUDA GPU that torch can use; use --device cpu")
    if chosen.index is not None and chosen.index >= count:
        raise RobustadError(f"--device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
