"""What the benchmark scripts share: where the real MVTec AD images are, and the command line of the scripts that
compare a detector with anomalib's in anomalib's own environment."""

from __future__ import annotations

import argparse
import json
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


def comparison_arguments(description: str, anomalib_python: str, images: int) -> argparse.Namespace:
    """The arguments of a comparison with anomalib: the interpreter of anomalib's environment, the bottle images
    and how many to compare; the hidden ones are what the script passes to itself as the worker in that env."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--anomalib-python", type=Path, default=Path(anomalib_python))
    parser.add_argument("--bottle", type=Path, default=None,
                        help=f"MVTec AD bottle folder (default: ${DATA_VARIABLE}/bottle)")
    parser.add_argument("--images", type=int, default=images, help="test images compared (0: all 83)")
    parser.add_argument("--side", choices=["anomalib"], help=argparse.SUPPRESS)  # the worker in anomalib's env
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    return parser.parse_args()


def spread_test_images(bottle: Path, count: int) -> list[Path]:
    """``count`` test images spread over the good and defect folders (all of them for 0)."""
    paths = sorted((bottle / "test").glob("*/*.png"))
    return paths if count <= 0 else paths[::max(1, len(paths) // count)][:count]


def worker_command(python: Path, script: str, bottle: Path, weights: Path, out: Path, paths: list[Path]) -> list[str]:
    """The command that runs ``script`` as the worker in anomalib's environment (``--side anomalib``)."""
    return [str(python), script, "--side", "anomalib", "--bottle", str(bottle), "--weights", str(weights),
            "--out", str(out), "--paths", json.dumps([str(p) for p in paths])]
