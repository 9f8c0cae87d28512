"""The site in headless Chromium, opened from disk: no console error, sorting, filtering, and a card whose images
load. Skipped without Chromium (``apt-get install -y chromium chromium-driver``), failed when CI requires it."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from robustad.results.entries import ranking
from robustad.results.frame import load_rows
from robustad.results.site import build_site
from tests import browser
from tests.conftest import REQUIRE_VARIABLE
from tests.test_site import BOTTLE, write_examples


@pytest.fixture(scope="module")
def driver():
    reason = browser.missing()
    if reason is not None:
        if os.environ.get(REQUIRE_VARIABLE):
            pytest.fail(f"browser tests required ({REQUIRE_VARIABLE} is set) but {reason}")
        pytest.skip(reason)
    with browser.chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """The site of the bottle leaderboard, with a gallery for one of its attacked rows."""
    folder = tmp_path_factory.mktemp("browser")
    rows = load_rows(BOTTLE, [])
    write_examples(folder / "examples", rows[rows["attack"] == "pgd"]["cell_hash"].iloc[0])
    return build_site(rows, folder / "site", examples=folder / "examples"), ranking(rows)


def errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def visible_rows(driver) -> list:
    return [row for row in driver.find_elements("css selector", "#ranking tbody tr") if row.is_displayed()]


def choose(driver, name: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("css selector", f'select[data-filter="{name}"]')).select_by_value(value)


def test_index_opens_from_disk_without_console_errors(driver, built):
    page, lines = built
    driver.get(page.as_uri())
    assert errors(driver) == []
    defaults = lines[(lines["threat"] == "any") & (lines["eps"] == "8/255") & (lines["calibrator"] == "platt")]
    assert len(visible_rows(driver)) == len(defaults) == 1  # one entry at the default filters
    shown = driver.find_element("id", "shown").text
    assert shown == f"1 of {len(lines)} lines"


def test_sorting_by_a_column_orders_the_lines(driver, built):
    page, lines = built
    driver.get(page.as_uri())
    for name in ("dataset", "category", "threat", "eps", "calibrator"):
        choose(driver, name, "")
    assert len(visible_rows(driver)) == len(lines)
    header = driver.find_element("css selector", '#ranking th[data-column="adv_ece"]')
    column = [th.get_attribute("data-column") for th in driver.find_elements("css selector", "#ranking th")]
    index = column.index("adv_ece")
    header.click()
    shown = [float(row.find_elements("tag name", "td")[index].get_attribute("data-sort"))
             for row in visible_rows(driver)]
    assert shown == pytest.approx(sorted(lines["adv_ece_mean"]))
    header.click()
    shown = [float(row.find_elements("tag name", "td")[index].get_attribute("data-sort"))
             for row in visible_rows(driver)]
    assert shown == pytest.approx(sorted(lines["adv_ece_mean"], reverse=True))
    assert header.get_attribute("aria-sort") == "descending" and errors(driver) == []


def test_filtering_keeps_the_matching_lines(driver, built):
    page, lines = built
    driver.get(page.as_uri())
    for name, value in (("threat", "transfer"), ("eps", ""), ("calibrator", "")):
        choose(driver, name, value)
    rows = visible_rows(driver)
    assert len(rows) == len(lines[lines["threat"] == "transfer"]) > 1
    assert {row.get_attribute("data-threat") for row in rows} == {"transfer"}
    choose(driver, "eps", "2/255")
    assert len(visible_rows(driver)) == len(lines[(lines["threat"] == "transfer") & (lines["eps"] == "2/255")])


def test_a_card_shows_its_figures_and_gallery(driver, built):
    page, _ = built
    driver.get(page.as_uri())
    visible_rows(driver)[0].find_element("tag name", "a").click()
    assert driver.current_url.endswith(".html") and "/entries/" in driver.current_url
    images = driver.find_elements("tag name", "img")
    assert len(images) == 2 + 5  # two robustness curves (8-bit rounding or not) and one gallery image's five parts
    for image in images:
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0, \
            image.get_attribute("src")
    assert errors(driver) == []
