"""Bad values are one line naming them, exit code 2, before any work: not a failed cell per cell, not a crash."""

from __future__ import annotations

import os
import re
from dataclasses import replace

import pytest
import torch

from robustad.components import Option
from robustad.engine.request import build_cells
from robustad.engine.settings import GPU_CHUNK, RunSettings, check_device, default_chunk, default_threads
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from tests.boards import row, run_robustad, write_board
from tests.test_request import REQUEST, folder_dataset


@pytest.fixture
def data(tmp_path):
    return folder_dataset(tmp_path / "data")


def refused(request_changes: dict, data, message: str) -> None:
    with pytest.raises(RobustadError) as error:
        build_cells(replace(REQUEST, data_root=data, **request_changes), get_registry())
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("device, message", [
    ("foo", "--device 'foo': not a torch device; expected cpu, cuda or cuda:N"),
    ("cpu:x", "--device 'cpu:x': not a torch device"),
    ("", "--device '': not a torch device"),
    ("meta", "--device 'meta': robustad runs on cpu, cuda or cuda:N, not on meta"),
    ("mps", "not on mps"),
    ("cuda:99", "--device 'cuda:99': this machine has"),
])
def test_a_device_robustad_cannot_run_on_is_refused(device, message):
    with pytest.raises(RobustadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunSettings(device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_but_not_for_ray_workers():
    with pytest.raises(RobustadError, match="--device 'cuda': this machine has no CUDA GPU"):
        RunSettings(device="cuda")
    check_device("cuda", present=False)  # a Ray cluster's workers may have the GPUs the driver lacks
    RunSettings(device="cuda", executor="ray")


@pytest.mark.parametrize("field, value, message", [
    ("resamples", 100_001, "--resamples 100001: expected an integer between 0 (no intervals) and 100000"),
    ("resamples", 10**14, "--resamples 100000000000000"), ("resamples", -1, "--resamples -1"),
    ("threads", 0, "--threads 0: expected an integer between 1 and 1024"), ("threads", -3, "--threads -3"),
    ("threads", 100_000, "--threads 100000"),
])
def test_run_settings_out_of_bounds_are_refused(field, value, message):
    with pytest.raises(RobustadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunSettings(**{field: value})


@pytest.mark.parametrize("changes, message", [
    ({"resolution": "7"}, "--resolution 7: below the patch size of backbone 'efficientnet_lite0'; expected an "
                           "integer >= 8"),
    ({"resolution": "32,1"}, "--resolution 1: below the patch size"),
    ({"shots": "100000"}, "folder/part: k=100000 with seed 0 needs normal training images 0..99999 but only 2 exist"),
    ({"shots": "1", "seeds": "0,2"}, "k=1 with seed 2 needs normal training images 2..2 but only 2 exist"),
    ({"seeds": "99999999999999999999"}, "--seeds '99999999999999999999': expected an integer between 0 and "
                                        "4294967295"),
    ({"seeds": "4294967296"}, "--seeds '4294967296'"),
    ({"calib_fraction": 0.99}, "calib fraction 0.99: 6 normal and 6 anomalous test images leave"),
    ({"options": ["detector.anomalydino.batch_size=0"]}, "anomalydino option batch_size=0: expected an integer >= 1"),
    ({"options": ["detector.anomalydino.batch_size=-4"]}, "anomalydino option batch_size=-4"),
    ({"options": ["detector.anomalydino.masking=maybe"]}, "anomalydino: masking='maybe'; expected auto, on or off"),
    ({"options": ["detector.anomalydino.augment=flip"]}, "anomalydino: augment='flip'"),
    ({"options": ["detector.anomalydino.mask_morphology=zigzag"]}, "anomalydino: mask_morphology='zigzag'"),
    ({"options": ["surrogate.linear.C=nan"]}, "surrogate 'linear' option C='nan': expected a finite number"),
    ({"options": ["surrogate.linear.C=inf"]}, "option C='inf': expected a finite number"),
    ({"options": ["surrogate.linear.C=-1e999"]}, "option C='-1e999': expected a finite number"),
    ({"options": ["surrogate.linear.C=-1"]}, "linear surrogate option C=-1.0: expected a finite number > 0"),
    ({"options": ["surrogate.linear.C=0"]}, "linear surrogate option C=0.0"),
    ({"options": ["surrogate.linear.max_iter=0"]}, "linear surrogate option max_iter=0: expected an integer >= 1"),
    ({"attack": "pgd", "options": ["attack.pgd.alpha_ratio=nan"]}, "option alpha_ratio='nan': expected a finite"),
    ({"attack": "torchattacks:FGSM", "options": ["attack.torchattacks.eps=1e999"]},
     "option value '1e999': expected a finite number"),
    ({"eps": "1e-400"}, "eps '1e-400' is 0 as a float; expected a positive number"),
    ({"eps": "2/255,1/10**400"}, "eps '1/10**400' is not a number"),
    ({"weights": "/no/such/weights.pt"}, "--weights '/no/such/weights.pt': no such file"),
    ({"weights": "./missing.safetensors"}, "--weights './missing.safetensors': no such file"),
    ({"weights": "/dev/null"}, "--weights '/dev/null': not a regular file"),
    ({"weights": "/tmp"}, "--weights '/tmp': a folder"),
    ({"chunk": 0}, "--chunk 0: expected an integer between 1 and 256"),
    ({"chunk": 257}, "--chunk 257: expected an integer between 1 and 256"),
    ({"chunk": 2.5}, "--chunk 2.5: expected an integer"),
    ({"chunk": True}, "--chunk True: expected an integer"),
])
def test_bad_values_are_refused_when_cells_are_built(data, changes, message):
    refused(changes, data, message)


@pytest.mark.parametrize("given, threads", [(None, "cores"), ("3", 3), ("1", 1), ("4,2", 4), (" 2 ", 2)])
def test_threads_default_to_omp_num_threads_when_set(monkeypatch, given, threads):
    """What torch itself follows, and how SLURM, Ray and users tell a process its share of the machine."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if given is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", given)
    assert default_threads() == (len(os.sched_getaffinity(0)) if threads == "cores" else threads)


@pytest.mark.parametrize("given", ["abc", "0", "-1", "2.5", "5000"])
def test_a_bad_omp_num_threads_is_one_line(monkeypatch, given):
    monkeypatch.setenv("OMP_NUM_THREADS", given)
    with pytest.raises(RobustadError, match=f"OMP_NUM_THREADS='{re.escape(given)}': expected an integer between 1 "
                                            "and 1024"):
        default_threads()


def test_the_chunk_defaults_to_one_on_a_cpu():
    assert default_chunk("cpu") == 1 and default_chunk("cuda:0") == GPU_CHUNK > 1


def test_the_option_error_names_its_component_once(data):
    with pytest.raises(RobustadError) as error:
        build_cells(replace(REQUEST, data_root=data, options=["dataset.folder.x=1"]), get_registry())
    assert str(error.value).count("dataset 'folder'") == 1


def test_the_largest_seed_is_accepted(data):
    [cell] = build_cells(replace(REQUEST, data_root=data, shots="all", seeds="4294967295"), get_registry())
    assert cell.seed == 2**32 - 1


def test_a_non_finite_value_is_allowed_where_the_default_is_one():
    assert Option("limit", float, float("inf")).parse("inf") == float("inf")
    with pytest.raises(RobustadError, match="limit='nan': expected a finite number"):
        Option("limit", float, 1.0).parse("nan")


@pytest.mark.parametrize("args, message", [
    (["bench", "--device", "foo"], "--device 'foo'"),
    (["bench", "--resolution", "7"], "--resolution 7: below the patch size"),
    (["bench", "--shots", "100000"], "k=100000"),
    (["bench", "--seeds", "99999999999999999999"], "'99999999999999999999'"),
    (["bench", "--resamples", "1e12"], "Invalid value for '--resamples': '1e12': Input should be a valid integer"),
    (["bench", "--resamples", "99999999999999"], "--resamples 99999999999999"),
    (["bench", "--calib-fraction", "abc"], "Invalid value for '--calib-fraction': 'abc'"),
    (["bench", "--threads", "abc"], "Invalid value for '--threads': 'abc'"),
    (["bench", "--threads=2.5"], "Invalid value for '--threads': '2.5'"),
    (["bench", "--threads", "0"], "--threads 0: expected an integer between 1 and 1024"),
    (["bench", "--threads", "-2"], "--threads -2"),
    (["bench", "--chunk", "0"], "--chunk 0: expected an integer between 1 and 256"),
    (["bench", "--chunk", "x"], "Invalid value for '--chunk': 'x'"),
    (["bench", "--opt", "detector.anomalydino.batch_size=0"], "batch_size=0"),
    (["bench", "--eps", "1e-400"], "eps '1e-400'"),
    (["audit", "{board}", "--tolerance", "-1"], "Invalid value for '--tolerance': '-1'"),
    (["audit", "{board}", "--zero-grad-threshold", "2"], "'--zero-grad-threshold': '2'"),
    (["audit", "{board}", "--tolerance", "inf"], "--tolerance inf: expected a number in [0, 1)"),
    (["audit", "{board}", "--tolerance", "1e400"], "--tolerance inf"),
    (["audit", "{board}", "--tolerance", "1"], "--tolerance 1.0: expected a number in [0, 1)"),
    (["audit", "{board}", "--tolerance", "nan"], "'--tolerance': 'nan'"),
])
def test_on_the_command_line_a_bad_value_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, args, message):
    board = write_board(tmp_path / "board.csv", [row()])
    args = [str(board) if arg == "{board}" else arg for arg in args]
    extra = ["--attack", "none", "--out", tmp_path / "out.csv"] if args[0] == "bench" else []
    code, out, err = run_robustad(monkeypatch, capsys, *args, *extra)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("robustad: error: ") and message in err, err
    assert "cells" not in out and not (tmp_path / "out.csv").exists()
