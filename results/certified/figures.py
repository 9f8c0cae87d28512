"""The README's certified-against-empirical plots, one per sigma, drawn by the site's own figure code from the
committed leaderboard beside this script: ``.venv/bin/python results/certified/figures.py`` writes
``results/certified/sigma-<sigma>.png``."""

from __future__ import annotations

import runpy
from pathlib import Path

from robustad.results.figures import draw_metric_vs_eps, save

HERE = Path(__file__).resolve().parent
tables = runpy.run_path(str(HERE / "tables.py"))


def main() -> None:
    rows = tables["load"]()
    smoothed = rows[rows["defense"] == "smoothing"]
    for sigma in tables["SIGMAS"]:
        own = smoothed[smoothed["sigma"] == sigma]
        attacked = own[(own["norm"] == "l2") & (own["attack"] != "none")]
        certified = own[own["cert_auroc"].notna()]
        figure = draw_metric_vs_eps(attacked, "auroc", norm="l2", certified=certified)
        figure.axes[0].set_title(f"median smoothing, sigma {sigma:g}: AUROC against L2 radius (bands: 95 % "
                                 "interval)", fontsize="medium")
        print(save(figure, HERE / f"sigma-{sigma:g}.png"))


if __name__ == "__main__":
    main()
