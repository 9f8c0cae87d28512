"""Shared fixtures: the real bottle images, and a tiny random backbone for fast unit tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustad import interrupts
from robustad.declaration import Request
from robustad.records import Features

TEST_DATA_VARIABLE = "ROBUSTAD_TEST_DATA"  # a folder in the MVTec AD layout that holds bottle/
REQUIRE_VARIABLE = "ROBUSTAD_REQUIRE_TEST_DATA"  # set (as CI does): missing real images fail instead of skip
HOW_TO_GET = ("set ROBUSTAD_TEST_DATA to a folder in the MVTec AD layout holding bottle/ (MVTec AD from "
              "https://www.mvtec.com/company/research/datasets/mvtec-ad, licence CC BY-NC-SA 4.0)")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the suite (and the CLI subprocesses it starts) out of the user's real cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROBUSTAD_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def real_data_root() -> Path | None:
    """The MVTec-layout folder named by ROBUSTAD_TEST_DATA, when it holds the bottle category."""
    setting = os.environ.get(TEST_DATA_VARIABLE)
    root = Path(setting).expanduser().resolve() if setting else None
    return root if root is not None and (root / "bottle" / "train" / "good").is_dir() else None


@pytest.fixture(scope="session")
def mvtec_root() -> Path:
    """The real MVTec AD images (only ``bottle`` is needed): skipped without them, failed when CI requires them."""
    root = real_data_root()
    if root is None:
        where = os.environ.get(TEST_DATA_VARIABLE, "unset")
        message = f"real MVTec AD bottle images not found ({TEST_DATA_VARIABLE}={where}); {HOW_TO_GET}"
        if os.environ.get(REQUIRE_VARIABLE):
            pytest.fail(message)
        pytest.skip(message)
    return root


class TinyBackbone(torch.nn.Module):
    """A random patch-embedding 'backbone' (patch 4, 16 channels): differentiable and fast."""

    name = "tiny"
    description = "tiny random conv backbone for tests"
    patch_size = 4
    weights_id = "random-tiny"

    def __init__(self, *, seed: int = 0, dim: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embed = torch.nn.Conv2d(3, dim, kernel_size=4, stride=4)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=generator) * 0.3)
            self.embed.bias.copy_(torch.randn(dim, generator=generator) * 0.1)
        self.forward_calls = 0
        self.images_seen = 0

    def forward(self, x: torch.Tensor) -> Features:
        self.forward_calls += 1
        self.images_seen += x.shape[0]
        tokens = torch.tanh(self.embed(x)).permute(0, 2, 3, 1)
        return Features(patch_tokens=tokens, global_token=tokens.mean(dim=(1, 2)))


class LoudBackbone(torch.nn.Module):
    """The tiny backbone's tokens times 10, so the PCA foreground rule (threshold 10) keeps some patches, not all."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.patch_size = inner.patch_size

    def forward(self, x: torch.Tensor) -> Features:
        features = self.inner(x)
        return Features(patch_tokens=10 * features.patch_tokens, global_token=features.global_token)


@pytest.fixture
def tiny_backbone() -> TinyBackbone:
    return TinyBackbone().eval()


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m robustad ARGS`` in a subprocess and capture its output."""
    return subprocess.run([sys.executable, "-m", "robustad", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def bottle_request(**fields: object) -> Request:
    """A request for bottle, efficientnet_lite0, AnomalyDINO, 1-shot, seed 0, 30 % calib, with ``fields`` over it."""
    defaults: dict = dict(category="bottle", shots="1", seeds="0", backbone="efficientnet_lite0", weights="",
                          detector="anomalydino", calib_fraction=0.3, options=[])
    return Request(noise_control=False, **{**defaults, **fields})


@pytest.fixture
def sigint_handler():
    """robustad's Ctrl-C handler for one test; afterwards Python's again, and no Ctrl-C remembered (a later test's
    run would stop at its first row)."""
    interrupts.install()
    yield
    interrupts.install()  # forgets this test's Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)
