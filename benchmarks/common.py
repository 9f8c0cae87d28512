"""What the benchmark scripts share: where the real MVTec AD images are."""

from __future__ import annotations

import os
from pathlib import Path

DATA_VARIABLE = "ROBUSTAD_TEST_DATA"


def mvtec_root(given: str | Path | None = None) -> Path:
    """The folder in the MVTec AD layout holding ``bottle/``: ``given``, else ``$ROBUSTAD_TEST_DATA``."""
    chosen = given or os.environ.get(DATA_VARIABLE)
    if not chosen or not (Path(chosen) / "bottle").is_dir():
        raise SystemExit(f"no bottle images: pass a folder in the MVTec AD layout holding bottle/, or set "
                         f"{DATA_VARIABLE} (now {os.environ.get(DATA_VARIABLE, 'unset')})")
    return Path(chosen)
