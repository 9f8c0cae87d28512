"""Where a backbone's weights come from, and the identifier a leaderboard row records for them.

A user file is identified by its content (``sha256:<hex>``); hub weights by their hub name. Hub files are
taken from the local Hugging Face cache when present; otherwise one quick request checks that the hub is
reachable before downloading, so an offline machine gets one clear error in seconds instead of minutes of
retries.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from robustad.errors import RobustadError, one_line

RANDOM = "random"  # weights option value: random initialisation, for tests and smoke runs only
WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz", ".pkl")
_HUB_PROBE_TIMEOUT_S = 5.0


@contextmanager
def seeded_random_init(seed: int = 0) -> Iterator[None]:
    """Build a model with ``weights=random`` reproducibly, leaving the caller's RNG state untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def weights_identity(text: str) -> str:
    """What a cell's key records of the ``--weights`` value: ``""`` (the backbone's own source), ``random``,
    ``sha256:<hex>`` of an existing file (moving it keeps the key), or the text itself for the backbone to judge.
    Text written as a path (``/``, ``./``, ``~`` or a weights suffix) must name a regular file: otherwise every
    cell would fail on it, one by one."""
    text = text.strip()
    path = Path(text).expanduser()
    if text and text != RANDOM and path.is_file():
        return file_id(path)
    if text.startswith(("/", "./", "../", "~")) or path.suffix.lower() in WEIGHTS_SUFFIXES:
        what = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "no such file"
        raise RobustadError(f"--weights {text!r}: {what}; expected a weights file, a name the backbone knows, "
                            f"or {RANDOM}")
    return text


def file_id(path: Path) -> str:
    """The identifier of a weights file: ``sha256:<hex>`` of its bytes, hashed once per process while its size and
    modification time stay the same (a cell's key and each backbone built from the file both need it)."""
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def local_file(text: str, backbone: str) -> Path:
    """The weights file named by the ``weights`` option, or a one-line error naming it."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise RobustadError(f"backbone {backbone}: weights file {text!r} does not exist or is not a file")
    return path


def hub_file(repo_id: str, filenames: Sequence[str], backbone: str) -> Path:
    """The first of ``filenames`` in hub repository ``repo_id``: from the local cache, else downloaded."""
    from huggingface_hub import constants, get_session, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import RemoteEntryNotFoundError

    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename)
        if isinstance(cached, str):
            return Path(cached)
    try:
        get_session().head(constants.ENDPOINT, timeout=_HUB_PROBE_TIMEOUT_S)
    except Exception:  # no network, DNS failure, proxy refusal or HF_HUB_OFFLINE: all mean "offline" here
        raise RobustadError(_offline_message(repo_id, backbone)) from None
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo_id, filename))
        except RemoteEntryNotFoundError:  # this file name is absent: try the next
            continue
        except Exception as exc:  # gated repository, interrupted transfer, full disk, ...
            raise RobustadError(f"backbone {backbone}: downloading {repo_id}/{filename} failed ({one_line(exc)}); "
                                f"pass a weights file with --weights PATH (backbone option weights=PATH)") from None
    raise RobustadError(f"backbone {backbone}: hub repository {repo_id} has none of {', '.join(filenames)}")


def unloadable(path: Path, backbone: str, error: Exception) -> RobustadError:
    """The one-line error for a weights file that a loader rejected (bad format or wrong model)."""
    return RobustadError(f"backbone {backbone}: cannot load weights file {path}: {one_line(error)}")


def _offline_message(repo_id: str, backbone: str) -> str:
    return (f"backbone {backbone}: cannot get weights {repo_id} from the Hugging Face hub (offline and not "
            f"cached); pass a weights file with --weights PATH (backbone option weights=PATH) or use the "
            f"offline backbone efficientnet_lite0")
