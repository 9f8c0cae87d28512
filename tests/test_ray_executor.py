"""The Ray executor on a simulated two-node cluster: same rows as in-process, resume after a killed driver,
retries, failed groups reported with their cell keys, and a clear error for a node that cannot see the data."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
from ray.cluster_utils import Cluster

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.ray_executor import MAX_RETRIES, _gpus_per_task, import_ray, run_ray
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.plugins import get_registry
from robustad.results.leaderboard import COLUMNS, read_rows

REPO = Path(__file__).resolve().parents[1]
NODE = dict(num_cpus=1, object_store_memory=200 * 1024 ** 2)
# 2 categories x 2 seeds = 4 prefix groups of 2 cells each, so rows arrive in several batches.
GRID = dict(category="weave,disc", shots="1", seeds="0,1", backbone="efficientnet_lite0", resolution="64",
            surrogate="score", attack="fgsm", eps="2/255", calib="platt,none")
METRICS = [c for c in COLUMNS if c.startswith(("clean_", "adv_")) or c == "flag_auroc"]
CONSTANT = [c for c in COLUMNS if c not in METRICS and not c.startswith("t_") and c != "timestamp"]


def request(dataset: str = "demo", data_root: Path | None = None, options: tuple[str, ...] = (),
            **overrides: str) -> Request:
    """The bench request of GRID, with some lists replaced."""
    grid = {**GRID, **overrides}
    return Request(noise_control=False, dataset=dataset, data_root=data_root, category=grid["category"],
                   shots=grid["shots"], seeds=grid["seeds"], backbone=grid["backbone"], weights="",
                   resolution=grid["resolution"], detector="anomalydino", surrogate=grid["surrogate"],
                   attack=grid["attack"], eps=grid["eps"], calib=grid["calib"], calib_fraction=0.3,
                   options=list(options))


def cli_grid(**overrides: str) -> list[str]:
    """The same grid as ``robustad bench`` options."""
    grid = {**GRID, **overrides}
    return [f"--{name}={value}" for name, value in grid.items()] + ["--no-pixel-metrics", "--no-noise-control"]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes with one CPU each, on this machine."""
    simulated = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    simulated.add_node(**NODE)
    yield simulated
    ray.shutdown()
    simulated.shutdown()


def settings(**changes) -> RunSettings:
    """One torch thread (the simulated nodes have one CPU each; CPU float sums depend on the thread count)."""
    return RunSettings(**{"pixel_metrics": False, "threads": 1, "resamples": 100, **changes})


def on_ray(cluster, **changes) -> RunSettings:
    return settings(executor="ray", ray_address=cluster.address, **changes)


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory) -> dict[str, dict[str, str]]:
    """The grid run in-process on the same thread count as every Ray task."""
    out = tmp_path_factory.mktemp("local") / "board.csv"
    run_local(build_cells(request(), get_registry()), settings(), out, get_registry(), SilentReporter(),
              lambda cell, row: None)
    return {row["cell_hash"]: row for row in read_rows(out)}


def assert_same_rows(rows: list[dict[str, str]], reference: dict[str, dict[str, str]]) -> None:
    assert sorted(row["cell_hash"] for row in rows) == sorted(reference)
    for row in rows:
        theirs = reference[row["cell_hash"]]
        assert {c: row[c] for c in CONSTANT} == {c: theirs[c] for c in CONSTANT}
        for metric in METRICS:
            assert (row[metric] == "") == (theirs[metric] == ""), metric
            if row[metric]:
                assert float(row[metric]) == pytest.approx(float(theirs[metric]), abs=1e-9), metric


@pytest.mark.integration
def test_ray_rows_equal_the_in_process_rows(cluster, local_rows, tmp_path):
    out, scores = tmp_path / "board.csv", tmp_path / "scores"
    cells = build_cells(request(), get_registry())
    seen = []
    result = run_ray(cells, on_ray(cluster, save_scores=scores), out, get_registry(), SilentReporter(),
                     lambda cell, row: seen.append((cell.key, row["cell_hash"])))
    assert result.failures == [] and result.skipped == 0
    assert len(local_rows) == 8 and all(key == row_key for key, row_key in seen) and len(seen) == 8
    assert_same_rows(read_rows(out), local_rows)
    assert sorted(p.stem for p in scores.iterdir()) == sorted(local_rows)
    again = run_ray(cells, on_ray(cluster), out, get_registry(), SilentReporter(), lambda cell, row: None)
    assert again.written == [] and again.skipped == 8


@pytest.mark.integration
def test_killed_driver_then_rerun_completes_the_grid(cluster, local_rows, tmp_path):
    out = tmp_path / "board.csv"
    command = [sys.executable, "-m", "robustad", "bench", *cli_grid(), "--out", str(out), "--executor", "ray",
               "--ray-address", cluster.address, "--threads", "1", "--resamples", "100"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None and not (out.exists() and read_rows(out)):
        time.sleep(0.05)
    assert driver.poll() is None, f"the driver ended before it could be killed: {driver.stderr.read()}"
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=60)
    with out.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == list(COLUMNS) and all(len(line) == len(COLUMNS) for line in lines)
    partial = read_rows(out)
    assert 1 <= len(partial) < len(local_rows)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(local_rows) - len(partial)} rows written, {len(partial)} cells already done" in rerun.stdout
    assert "Traceback" not in rerun.stderr
    assert_same_rows(read_rows(out), local_rows)


class FlakyDemo:
    """The demo dataset, failing on purpose in Ray tasks: ``fail_once`` on its first load there, ``always_fail``
    on every load there (the driver's loads, for the request's data digest, never fail)."""

    name = "flaky_demo"
    description = "demo dataset that fails on purpose (Ray retry tests)"

    def __init__(self, *, attempts: str = "", fail_once: str = "", always_fail: str = "") -> None:
        from robustad_plugins.demo import Demo

        self.demo = Demo()
        self.attempts, self.fail_once, self.always_fail = Path(attempts), fail_once, always_fail

    def categories(self, root):
        return self.demo.categories(root)

    def load(self, root, category):
        if not ray.is_initialized():  # the driver building the grid
            return self.demo.load(root, category)
        (self.attempts / f"{category}.{uuid.uuid4().hex}").touch()  # one file per attempt, in any process
        attempt = len(list(self.attempts.glob(f"{category}.*")))
        if category == self.always_fail or (category == self.fail_once and attempt == 1):
            raise RuntimeError(f"flaky_demo fails on purpose: {category} attempt {attempt}")
        return self.demo.load(root, category)


class FlakyPlugin:
    @hookimpl
    def register_datasets(self, register):
        register(FlakyDemo)


def register_flaky_plugin() -> None:
    """Ray worker setup hook: workers load entry points only, so the test plugin is added here."""
    registry = get_registry()
    if not registry.pm.has_plugin("flaky"):
        registry.add(FlakyPlugin(), "flaky")


@pytest.mark.integration
def test_failing_task_is_retried_and_a_group_that_keeps_failing_is_reported(cluster, tmp_path):
    register_flaky_plugin()
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    options = (f"dataset.flaky_demo.attempts={attempts}", "dataset.flaky_demo.fail_once=disc",
               "dataset.flaky_demo.always_fail=weave")
    cells = build_cells(request("flaky_demo", seeds="0", attack="none", calib="platt", options=options),
                        get_registry())
    out = tmp_path / "board.csv"
    result = run_ray(cells, on_ray(cluster), out, get_registry(), SilentReporter(), lambda cell, row: None,
                     runtime_env={"env_vars": {"PYTHONPATH": str(REPO)},
                                  "worker_process_setup_hook": f"{__name__}.register_flaky_plugin"})
    weave = [c.key for c in cells if c.category == "weave"]
    disc = [c.key for c in cells if c.category == "disc"]
    assert [key for key, _ in result.failures] == weave
    message = result.failures[0][1]
    assert "flaky_demo/weave" in message and weave[0] in message and "\n" not in message
    assert f"RuntimeError: flaky_demo fails on purpose: weave attempt {1 + MAX_RETRIES}" in message
    assert [row["cell_hash"] for row in read_rows(out)] == disc
    assert len(list(attempts.glob("disc.*"))) == 2 and len(list(attempts.glob("weave.*"))) == 1 + MAX_RETRIES


@pytest.mark.integration
def test_cli_reports_a_failed_group_by_cell_keys_and_exits_1(cluster, tmp_path):
    from robustad_plugins.demo import cache_dir, ensure_generated

    root = tmp_path / "data"
    demo = ensure_generated(cache_dir())
    for category in ("weave", "disc"):
        shutil.copytree(demo / category, root / category)
    broken = root / "weave" / "test" / "good" / "000.png"
    broken.write_bytes(broken.read_bytes()[:100])  # truncated: a RobustadError, not retried
    grid = dict(seeds="0", attack="none", calib="platt")
    cells = build_cells(request("folder", root, **grid), get_registry())
    out = tmp_path / "board.csv"
    result = subprocess.run([sys.executable, "-m", "robustad", "bench", "--dataset", "folder", "--data-root",
                             str(root), *cli_grid(**grid), "--out", str(out), "--executor", "ray",
                             "--ray-address", cluster.address, "--threads", "1"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1, result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("robustad: cell failed:")]
    weave = [c.key for c in cells if c.category == "weave"]
    assert len(failed) == len(weave) and all(key in line for key, line in zip(weave, failed))
    assert all(f"cannot read image {broken}" in line for line in failed)
    assert [row["cell_hash"] for row in read_rows(out)] == [c.key for c in cells if c.category == "disc"]


@pytest.mark.integration
def test_a_node_that_cannot_see_the_data_root_is_named(cluster, tmp_path):
    cells = build_cells(request(seeds="0", attack="none", calib="platt"), get_registry())
    missing = tmp_path / "not-mounted"
    result = run_ray(cells, on_ray(cluster, data_root=missing), tmp_path / "board.csv", get_registry(),
                     SilentReporter(), lambda cell, row: None)
    nodes = {node.node_id: node.node_ip_address for node in cluster.list_all_nodes()}
    assert sorted(key for key, _ in result.failures) == sorted(c.key for c in cells)
    assert len(result.failures) == 2 and result.written == []
    for _, message in result.failures:
        assert f"data root {missing} is not visible on Ray node" in message
        assert any(f"{node} ({address})" in message for node, address in nodes.items())
    assert not (tmp_path / "board.csv").exists()


def test_missing_ray_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(RobustadError, match=r"^--executor ray needs Ray: pip install 'robustad\[ray\]'$"):
        import_ray()


@pytest.mark.parametrize("device, gpus_in_cluster, expected", [
    ("cpu", 4, 0), ("cuda", 2, 1), ("cuda", 0, "the Ray cluster has no GPU"), ("cuda:1", 2, "use --device cuda"),
])
def test_each_task_asks_ray_for_one_gpu_with_device_cuda(device, gpus_in_cluster, expected):
    resources = {"CPU": 8.0, "GPU": float(gpus_in_cluster)} if gpus_in_cluster else {"CPU": 8.0}
    fake_ray = SimpleNamespace(cluster_resources=lambda: resources)
    if isinstance(expected, int):
        assert _gpus_per_task(fake_ray, RunSettings(device=device, executor="ray")) == expected
    else:
        with pytest.raises(RobustadError, match=expected):
            _gpus_per_task(fake_ray, RunSettings(device=device, executor="ray"))


def test_an_address_where_nothing_listens_fails_fast(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    cells = build_cells(request(seeds="0", category="disc", attack="none", calib="platt"), get_registry())
    started = time.time()
    with pytest.raises(RobustadError, match=f"^cannot join the Ray cluster at {address}: nothing answers there"):
        run_ray(cells, settings(executor="ray", ray_address=address), tmp_path / "board.csv", get_registry(),
                SilentReporter(), lambda cell, row: None)
    assert time.time() - started < 5 and not ray.is_initialized()


def test_ray_address_without_the_ray_executor_is_a_usage_error(cli, tmp_path):
    result = cli("bench", "--ray-address", "auto", "--out", tmp_path / "x.csv")
    assert result.returncode == 2 and "--ray-address auto needs --executor ray" in result.stderr
