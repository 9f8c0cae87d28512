"""The one containment rule for files robustad reads or writes under names taken from data (a leaderboard's
``cell_hash``, an examples manifest's file names): leaderboards and example folders are downloaded from others, so
those names are untrusted.

A name is a relative path without ``..`` parts; the path it names, every symlink resolved, must stay inside the
folder it was given relative to. A symlink inside the folder that points elsewhere inside it is followed; one
that leads out is refused like ``../``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from robustad.errors import RobustadError


def inside(root: Path, name: object, what: str) -> Path:
    """``root / name`` when ``name`` is a plain relative path whose target, resolved, stays inside ``root``; else a
    one-line error naming ``what`` (e.g. ``example file X: image file``) and the bad name."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise RobustadError(f"{what} {name!r}: expected a relative file name")
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise RobustadError(f"{what} {name!r} is an absolute path; expected a name relative to {root}")
    if ".." in parts or "\\" in name:
        raise RobustadError(f"{what} {name!r} holds '..' or a backslash; expected a name inside {root}")
    path = root / name
    if not within(path, root):
        raise RobustadError(f"{what} {name!r} leads out of {root} (through a symlink); expected a file inside it")
    return path


def within(path: Path, root: Path) -> bool:
    """Whether ``path``, every symlink resolved (an absent tail taken as it is), lies inside ``root`` (resolved)."""
    target, folder = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return target == folder or folder in target.parents
