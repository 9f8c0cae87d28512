"""``robustad site``: the ranking against worst cases computed here, the pages it writes (offline, escaped), the
card's published numbers and gallery, and one-line errors on bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from robustad.results.entries import ENTRY, ranking, with_entries
from robustad.results.examples import PARTS
from robustad.results.frame import load_rows
from robustad.results.site import build_site
from tests.boards import board, row, run_robustad, write_board

BOTTLE = Path(__file__).resolve().parents[1] / "results" / "bottle" / "leaderboard.csv"


def two_entries() -> pd.DataFrame:
    """Two backbones, each attacked white-box (score) and by transfer (linear) at 8/255, with a noise control."""
    rows = []
    for backbone, strength in (("alpha", 0.0), ("beta", 0.2)):
        for seed in (0, 1):
            common = dict(backbone=backbone, seed=seed, eps="8/255", clean_auroc=0.95)
            rows += [row(**common, attack="noise", surrogate="none", adv_auroc=0.9 - strength / 4),
                     row(**common, attack="fgsm", surrogate="score", white_box=True, adv_auroc=0.5 + strength,
                         adv_ece=0.2, evasion_rate=0.3),
                     row(**common, attack="pgd", surrogate="score", white_box=True,
                         adv_auroc=0.1 + strength + seed / 10, adv_ece=0.4, evasion_rate=0.1),
                     row(**common, attack="pgd", surrogate="linear", white_box=False, adv_auroc=0.3 + strength,
                         adv_ece=0.1, evasion_rate=0.5)]
    return board(*rows)


def test_entries_come_from_the_cell_declaration():
    assert {"backbone", "weights", "resolution", "detector", "shots", "precision"} <= set(ENTRY)
    assert not {"dataset", "category", "seed", "attack", "surrogate", "eps", "calibrator"} & set(ENTRY)
    ids = with_entries(two_entries()).groupby("backbone")["entry"].nunique()
    assert ids.to_dict() == {"alpha": 1, "beta": 1}


def test_ranking_takes_the_worst_attack_of_each_threat_model():
    rows = two_entries()
    lines = ranking(rows).set_index(["threat", "entry"])
    names = with_entries(rows).groupby("entry")["backbone"].first()
    attacked = rows.assign(adv_auroc=rows["adv_auroc"].astype(float), backbone=rows["backbone"])
    attacked = attacked[attacked["attack"] != "noise"]
    means = attacked.groupby(["backbone", "surrogate", "attack"])["adv_auroc"].mean()
    for (threat, entry), line in lines.iterrows():
        own = means[names[entry]]
        chosen = {"white-box": own[["score"]], "gray-box": own[["linear"]], "any": own}[threat]
        assert line["adv_auroc_mean"] == pytest.approx(chosen.min())
        worst_surrogate, worst_attack = chosen.idxmin()
        assert line["attack"] == f"{worst_attack} via {worst_surrogate}"
        evasion = attacked[attacked["backbone"] == names[entry]].groupby(["surrogate", "attack"])["evasion_rate"]
        pool = evasion.apply(lambda v: v.astype(float).mean())
        pool = pool[[k for k in pool.index if threat == "any" or (k[0] == "score") == (threat == "white-box")]]
        assert line["evasion_rate_mean"] == pytest.approx(pool.max())
    ranks = lines.loc["any"].sort_values("rank")
    assert list(names[ranks.index]) == ["beta", "alpha"] and list(ranks["rank"]) == [1, 2]


def test_where_the_standard_attack_ran_its_number_is_the_worst_adversarial_auroc():
    """A stray low pgd beside standard is not taken (the luckiest of many estimates); without standard it is."""
    rows = [row(backbone="alpha", seed=seed, eps="8/255", clean_auroc=0.95, attack=attack, surrogate="score",
                white_box=True, adv_auroc=value, adv_ece=0.1, evasion_rate=0.2)
            for seed in (0, 1) for attack, value in (("pgd", 0.30 + seed / 10), ("standard", 0.40 + seed / 10))]
    with_standard = ranking(board(*rows)).set_index("threat").loc["white-box"]
    assert with_standard["attack"] == "standard via score"
    assert with_standard["adv_auroc_mean"] == pytest.approx(np.mean([0.40, 0.50]))
    without = ranking(board(*[r for r in rows if r["attack"] != "standard"])).set_index("threat").loc["white-box"]
    assert without["attack"] == "pgd via score" and without["adv_auroc_mean"] == pytest.approx(np.mean([0.3, 0.4]))


def test_site_of_the_bottle_leaderboard_is_offline_and_has_one_line_per_ranking_line(tmp_path):
    rows = load_rows(BOTTLE, [])
    page = build_site(rows, tmp_path / "site")
    html = page.read_text()
    assert html.count('<tr data-dataset="mvtec"') == len(ranking(rows))
    for link in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"[a-z]+:", link), link  # no network, no absolute path: it opens from disk
        assert (page.parent / link).is_file(), link
    [card] = (tmp_path / "site" / "entries").glob("*.html")
    text = card.read_text()
    for value in ("efficientnet_lite0", "c139ba02af2fb0a9", "2.14.1", "robustness-mvtec.png", "robustness-mvtec-8bit"):
        assert value in text
    for image in re.findall(r'<img src="([^"]+)"', text):
        assert Image.open(card.parent / image).size[0] > 0


def test_values_are_escaped_and_published_numbers_sit_beside_ours(tmp_path):
    hostile = "<script>alert(1)</script>"
    rows = board(row(category=hostile, backbone="dinov2_vits14", resolution=448, clean_auroc_full=0.97,
                     adv_auroc=0.2, white_box=True))
    published = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / "published.csv", dtype=str)
    page = build_site(rows, tmp_path / "site", published=published)
    assert hostile not in page.read_text() and "&lt;script&gt;" in page.read_text()
    [card] = (tmp_path / "site" / "entries").glob("*.html")
    text = card.read_text()
    assert hostile not in text
    section = text[text.index('id="published"'):]
    assert "<td class=\"num\">96.5</td><td class=\"num\">97.0</td>" in section  # 1-shot at 448 px, ours beside it
    assert "98.0" not in section  # the 8-shot row does not match


def write_examples(folder: Path, cell_hash: str) -> None:
    """An examples folder in the documented layout, with one image."""
    files = {part: f"prefix/0-{part}.png" for part in PARTS}
    (folder / "prefix").mkdir(parents=True)
    for name in files.values():
        Image.fromarray(np.full((8, 12, 3), 100, dtype=np.uint8)).save(folder / name)
    record = {"cell_hash": cell_hash, "folder": "prefix",
              "images": [{"name": "broken/000.png", "label": 1, "clean_score": 0.5, "adv_score": 0.1, "files": files}]}
    (folder / f"{cell_hash}.json").write_text(json.dumps(record))


def test_gallery_copies_the_examples_of_the_entry(tmp_path):
    line = row(adv_auroc=0.2, white_box=True)
    write_examples(tmp_path / "examples", line["cell_hash"])
    build_site(board(line), tmp_path / "site", examples=tmp_path / "examples")
    [card] = (tmp_path / "site" / "entries").glob("*.html")
    section = card.read_text()[card.read_text().index('id="gallery"'):]
    sources = re.findall(r'<img src="([^"]+)"', section)
    assert len(sources) == len(PARTS) and all((card.parent / s).is_file() for s in sources)
    assert "broken/000.png: score 0.500 → 0.100" in section


@pytest.mark.parametrize("problem, message", [
    ("examples missing", "--examples {examples} is not a folder"),
    ("not json", "example file {file} is not JSON"),
    ("foreign json", "example file {file} is not a robustad example file"),
    ("outside", "'../board.csv' holds '..'"),
])
def test_site_fails_with_one_line_on_bad_examples(tmp_path, monkeypatch, capsys, problem, message):
    line = row(adv_auroc=0.2, white_box=True)
    board_csv = write_board(tmp_path / "board.csv", [line])
    examples, file = tmp_path / "examples", tmp_path / "examples" / f"{line['cell_hash']}.json"
    write_examples(examples, line["cell_hash"])
    if problem == "examples missing":
        examples = tmp_path / "nowhere"
    elif problem == "not json":
        file.write_text("{")
    elif problem == "foreign json":
        file.write_text('{"images": 3}')
    else:
        record = json.loads(file.read_text())
        record["images"][0]["files"]["clean"] = "../board.csv"
        file.write_text(json.dumps(record))
    code, out, err = run_robustad(monkeypatch, capsys, "site", board_csv, "--examples", examples,
                                  "--out", tmp_path / "site")
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith("robustad: error: ")
    assert message.format(examples=examples, file=file) in err


CERTIFIED = Path(__file__).resolve().parents[1] / "results" / "certified" / "leaderboard.csv"


def test_l2_rows_are_a_threat_model_of_their_own_and_plot_beside_the_certificate(tmp_path):
    rows = load_rows(CERTIFIED, [])
    lines = ranking(rows)
    l2 = rows[rows["norm"] == "l2"]
    assert set(lines["threat"]) == {"white-box, L2", "any, L2"}
    assert set(lines["eps"]) == set(l2.loc[l2["attack"] == "pgd", "eps"])
    build_site(rows, tmp_path / "site")
    pages = {p.name: p.read_text() for p in (tmp_path / "site" / "entries").glob("*.html")}
    with_certificate = [name for name, page in pages.items() if "and the certified AUROC against the radius" in page]
    attacked = with_entries(rows)
    attacked = attacked[attacked["attack"] == "pgd"]
    # both sigmas' attacked entries (4 draws) and certified entries (100 draws) draw the certificate
    assert len(with_certificate) == 2 * attacked["options"].nunique() == 4
    assert all((tmp_path / "site" / "entries" / name.removesuffix(".html") / "robustness-mvtec-l2.png").is_file()
               for name in with_certificate)


def test_the_l2_figure_draws_radii_in_l2_units_and_the_mean_certificate():
    from robustad.results.figures import draw_metric_vs_eps

    rows = load_rows(CERTIFIED, [])
    sigma = rows["options"].str.contains('"sigma": 0.25')
    certified = rows[sigma & (rows["cert_auroc"] != "")]
    attacked = rows[sigma & (rows["attack"] == "pgd")]
    figure = draw_metric_vs_eps(attacked, "auroc", norm="l2", certified=certified)
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    [label] = [name for name in lines if name.startswith("certified")]
    assert label == "certified (100 draws, alpha 0.001)"
    expected = certified.assign(cert=certified["cert_auroc"].astype(float)).groupby("cert_radius")["cert"].mean()
    x, y = lines[label].get_data()
    assert list(x) == [0.25, 0.5, 1.0]
    assert list(y) == pytest.approx([expected["1/4"], expected["1/2"], expected["1"]])
    assert list(lines["pgd / score (4 draws, EOT 4)"].get_data()[0]) == [0.25, 0.5, 1.0]
