"""The adversarial gallery of the site: the example images ``bench --save-examples N`` stores, read back.

The folder's layout (written by ``robustad.engine.examples``)::

    EXAMPLES/<cell_hash>.json     one per attacked cell: {"cell_hash", "folder", "images": [...]}
    EXAMPLES/<folder>/<i>-<part>.png  the images of one attack prefix (cells differing only in the calibrator
                                   share them); parts: clean, adversarial, perturbation, map-clean, map-adversarial

Each image record holds ``name`` (the image's path in its dataset), ``label``, ``clean_score``, ``adv_score`` and
``files`` (part -> path relative to EXAMPLES).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from robustad.contained import inside
from robustad.errors import RobustadError

SCORES = ("clean_score", "adv_score")
PARTS = {"clean": "clean", "adversarial": "adversarial", "perturbation": "perturbation (amplified)",
         "map-clean": "anomaly map, clean", "map-adversarial": "anomaly map, attacked"}


def read_manifest(path: Path) -> dict:
    """One cell's examples record, checked to be what ``bench --save-examples`` writes: the file names it gives
    are checked where they are used (``contained.inside``), the rest here by type, so that a hand-made or hostile
    manifest is one line, not a traceback."""
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RobustadError(f"example file {path} is not JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(record, dict) or not isinstance(record.get("images"), list) or "folder" not in record:
        raise RobustadError(f"example file {path} is not a robustad example file: expected an object with "
                            "folder and images")
    if not isinstance(record["folder"], str):
        raise RobustadError(f"example file {path}: folder {record['folder']!r} is not a name (expected text)")
    for image in record["images"]:
        files = image.get("files") if isinstance(image, dict) else None
        if not isinstance(files, dict) or set(files) != set(PARTS):
            raise RobustadError(f"example file {path}: an image lacks some of the parts {', '.join(PARTS)}")
        for name in SCORES:
            value = image.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise RobustadError(f"example file {path}: {name} {value!r} is not a number (expected a number "
                                    "or null)")
        if not isinstance(image.get("name", ""), str):
            raise RobustadError(f"example file {path}: image name {image['name']!r} is not text")
    return record


def gallery(rows: pd.DataFrame, examples: Path, target: Path, href: str) -> list[dict]:
    """Gallery groups of the rows that have examples, one per attack prefix: the images are copied into ``target``
    (linked as ``href``/...), so that the site does not depend on the examples folder."""
    groups, seen = [], set()
    for _, row in rows.iterrows():
        path = inside(examples, f"{row['cell_hash']}.json", "leaderboard cell_hash (as an example file)")
        if not path.is_file():
            continue
        record = read_manifest(path)
        if record["folder"] in seen:
            continue
        seen.add(record["folder"])
        images = []
        for image in record["images"]:
            parts = []
            for part, caption in PARTS.items():
                source = inside(examples, image["files"][part], f"example file {path}: image")
                if not source.is_file():
                    raise RobustadError(f"example file {path}: {image['files'][part]} is not an image in {examples}")
                copied = inside(target, image["files"][part], f"example file {path}: image")
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copied)
                parts.append({"src": f"{href}/{image['files'][part]}", "caption": caption})
            images.append({"name": image.get("name", ""), "clean_score": image.get("clean_score"),
                           "adv_score": image.get("adv_score"), "parts": parts})
        rounded = ", rounded to 8 bits" if str(row.get("round_8bit")) == "True" else ""
        groups.append({"title": f"{row['dataset']}/{row['category']} seed {row['seed']}: {row['attack']} via "
                                f"{row['surrogate']} at {row['eps']}{rounded}", "images": images})
    return groups
