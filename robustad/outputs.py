"""Output folders, checked before any work: a path that cannot become a writable folder is one line, not a
traceback (or one failed cell per cell) once the results are there."""

from __future__ import annotations

import os
from pathlib import Path

from robustad.errors import RobustadError


def check_folder(path: Path, option: str, purpose: str) -> None:
    """Raise unless ``path`` is a folder, or can be made one, that this process may write in: not a file, not
    below a file, not in a read-only folder, not a symlink loop. ``option`` and ``purpose`` say in the message what
    it is for."""
    if path.is_symlink():
        try:
            os.path.realpath(path, strict=True)
        except FileNotFoundError:
            pass  # a link to a folder not made yet
        except OSError:
            raise RobustadError(f"{option} {path} is a symlink that cannot be followed (a loop); expected a folder "
                                f"for {purpose}") from None
    if path.exists() and not path.is_dir():
        raise RobustadError(f"{option} {path} is a file; expected a folder for {purpose}")
    folder = next(part for part in (path, *path.parents) if part.exists())
    if not folder.is_dir():
        raise RobustadError(f"{option} {path} lies below the file {folder}; expected a folder for {purpose}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RobustadError(f"{option} {path}: cannot write in {folder} (read-only); expected a folder for "
                            f"{purpose} that robustad may write in")
