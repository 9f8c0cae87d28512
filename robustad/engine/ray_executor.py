"""Ray executor: one Ray task per model-prefix group (docs/protocol.md section 8), rows written by the driver alone.

Ray is an optional extra (``pip install 'robustad[ray]'``) and is imported only when this executor runs.
Every node must see the data root (and the ``--save-scores`` folder) at the same path: a shared file system.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from robustad.engine.executors import GridResult, pending
from robustad.engine.grid import group_by_model_prefix
from robustad.engine.progress import Reporter
from robustad.engine.runner import CellOutcome, run_group
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError, one_line
from robustad.plugins import PluginRegistry
from robustad.records import Cell
from robustad.results.leaderboard import Leaderboard

MAX_RETRIES = 2  # Ray's retries of a group that crashed or raised (not of a RobustadError: bad data stays bad)
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 ** 2  # tasks exchange only cells and rows; scores go to the file system
CONNECT_TIMEOUT_S = 10


class UnexpectedFailure(RobustadError):
    """Raised by a task whose component raised something other than a RobustadError: Ray retries the group."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RobustadError("--executor ray needs Ray: pip install 'robustad[ray]'") from None
    return ray


def run_ray(cells: list[Cell], settings: RunSettings, out: Path, registry: PluginRegistry, reporter: Reporter,
            on_row: Callable[[Cell, dict], None], plan: object = None, *, max_retries: int = MAX_RETRIES,
            runtime_env: dict | None = None) -> GridResult:
    """Run each pending prefix group as a Ray task and append its rows as the group finishes.

    ``settings.ray_address`` None starts a local Ray instance; ``"auto"``, ``"HOST:PORT"`` or
    ``"ray://HOST:PORT"`` joins a cluster. Each task takes ``settings.threads`` CPUs and runs torch on that many
    threads, as the local executor does, so both give the same rows. A group that still fails after Ray's
    retries fails its cells; every other group's rows still land. ``runtime_env`` is handed to ``ray.init``.
    The registry argument is the driver's (tasks build their own from the same entry points), and ``plan`` is
    left unused: tasks load their data and draw their splits themselves, where they run.
    """
    ray = import_ray()
    settings = _portable(settings)
    board = Leaderboard(out)
    todo, skipped = pending(cells, board)
    result = GridResult(skipped=skipped)
    groups = group_by_model_prefix(todo)
    if not groups:
        return result
    _connect(ray, settings.ray_address, runtime_env)
    try:
        task = ray.remote(_run_group_task).options(num_cpus=settings.threads, num_gpus=_gpus_per_task(ray, settings),
                                                   max_retries=max_retries, retry_exceptions=True)
        running = {task.remote(group, settings): group for group in groups}
        reporter.stage(f"{len(groups)} prefix groups on Ray", len(groups))
        while running:
            [finished], _ = ray.wait(list(running), num_returns=1)
            group = running.pop(finished)
            try:
                outcome = ray.get(finished)
            except ray.exceptions.RayError as error:
                outcome = error
            if isinstance(outcome, Exception):
                outcome = [CellOutcome(cell, error=one_line(_cause(outcome))) for cell in group]
            for cell_outcome in outcome:
                result.land(board, cell_outcome, on_row)
            reporter.advance()
    finally:
        ray.shutdown()
    return result


def _portable(settings: RunSettings) -> RunSettings:
    """Absolute paths (workers do not share the driver's working directory); the scores folder made now,
    so that a task can tell whether its node sees it."""
    def absolute(path: Path | None) -> Path | None:
        return path.resolve() if path is not None else None

    if settings.save_scores is not None:
        settings.save_scores.mkdir(parents=True, exist_ok=True)
    return replace(settings, data_root=absolute(settings.data_root), save_scores=absolute(settings.save_scores),
                   weights_file=absolute(settings.weights_file))


def _connect(ray: ModuleType, address: str | None, runtime_env: dict | None) -> None:
    """Start a local Ray instance (no dashboard, small object store) or join the cluster at ``address``;
    workers' output is kept out of the driver's terminal."""
    common: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
    if address is not None:
        _require_reachable(address)
    try:
        if address is None:
            ray.init(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
        else:
            ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = "start a local Ray instance" if address is None else f"join the Ray cluster at {address}"
        raise RobustadError(f"cannot {where}: {one_line(error)}") from None


def _require_reachable(address: str) -> None:
    """Fail fast when nothing listens at a HOST:PORT address (Ray itself keeps retrying for minutes)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as error:
        raise RobustadError(f"cannot join the Ray cluster at {address}: nothing answers there ({error}); expected "
                            "auto, HOST:PORT of a running head node, or ray://HOST:PORT") from None


def _gpus_per_task(ray: ModuleType, settings: RunSettings) -> int:
    """One GPU per task for ``--device cuda`` (Ray then sets CUDA_VISIBLE_DEVICES), none for the CPU."""
    if not settings.device.startswith("cuda"):
        return 0
    if settings.device != "cuda":
        raise RobustadError(f"--device {settings.device}: with --executor ray use --device cuda; "
                            "Ray gives each task its own GPU")
    if ray.cluster_resources().get("GPU", 0) < 1:
        raise RobustadError("--device cuda but the Ray cluster has no GPU; use --device cpu or add GPU nodes")
    return 1


def _run_group_task(cells: list[Cell], settings: RunSettings) -> list[CellOutcome] | RobustadError:
    """Body of the Ray task: the outcomes of one prefix group, in cell order.

    Torch runs on ``settings.threads`` threads whatever the node's environment, so every node computes the same
    floats. A RobustadError (bad input or data, a path this node cannot see) is returned rather than raised, so Ray
    does not retry what a retry cannot fix; a component that raised anything else (a passing fault, a bug) makes
    the task raise, so Ray retries the group.
    """
    import torch

    from robustad.plugins import get_registry

    torch.set_num_threads(settings.threads)
    try:
        _require_visible(settings)
    except RobustadError as error:
        return error
    outcomes = list(run_group(cells, settings, get_registry()))
    unexpected = next((o for o in outcomes if o.unexpected), None)
    if unexpected is not None:
        raise UnexpectedFailure(unexpected.error)
    return outcomes


def _require_visible(settings: RunSettings) -> None:
    """Fail before loading anything when this node does not see the run's folders at the driver's paths."""
    for what, path in (("data root", settings.data_root), ("--save-scores folder", settings.save_scores),
                       ("weights file", settings.weights_file)):
        if path is not None and not path.exists():
            import ray

            node, address = ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
            raise RobustadError(f"{what} {path} is not visible on Ray node {node} ({address}); "
                                "every node must see it at the same path (a shared file system)")


def _cause(error: BaseException) -> BaseException:
    """The original exception of a Ray task error (Ray's own text carries the remote traceback)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
