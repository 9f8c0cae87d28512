"""The README's screenshots of the site: ``python -m tests.screenshots DEMO.csv DEMO_EXAMPLES``.

The ranked table and the card come from ``results/bottle/leaderboard.csv``; the gallery from a run on the synthetic
``demo`` set (MVTec AD images are licensed for non-commercial use and are never copied into the repository), e.g.
``robustad bench --attack fgsm,pgd --surrogate score --eps 8/255 --calib platt --save-examples 2 --out DEMO.csv``.
Each PNG is reduced to a 256-colour palette to stay small.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

from robustad.results.aggregate import load_published
from robustad.results.frame import load_rows
from robustad.results.site import build_site
from tests.browser import chromium

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def shoot(driver, url: str, path: Path, height: int, setup: str = "") -> None:
    driver.set_window_size(1280, height)
    driver.get(url)
    if setup:
        driver.execute_script(setup)
    driver.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)
    print(f"{path.relative_to(REPO)}: {path.stat().st_size // 1024} kB")


def main(demo: Path, examples: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        bottle = build_site(load_rows(REPO / "results/bottle/leaderboard.csv", []), Path(folder) / "bottle",
                            published=load_published(REPO / "results/published.csv"), source="leaderboard.csv")
        shown = build_site(load_rows(demo, []), Path(folder) / "demo", examples=examples, source=demo.name)
        show_all = ("for (const name of ['threat', 'eps']) {const s = document.querySelector("
                    "`select[data-filter=${name}]`); s.value = ''; s.dispatchEvent(new Event('change', "
                    "{bubbles: true}));}")
        with chromium() as driver:
            shoot(driver, bottle.as_uri(), DOCS / "site-ranking.png", 720, show_all)
            [card] = (bottle.parent / "entries").glob("*.html")
            shoot(driver, card.as_uri(), DOCS / "site-card.png", 1700)
            [card] = (shown.parent / "entries").glob("*.html")
            shoot(driver, card.as_uri(), DOCS / "site-gallery.png", 640,
                  "Array.from(document.querySelectorAll('#gallery h3'))"
                  ".find((h) => h.textContent.includes('pgd via score')).scrollIntoView()")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
