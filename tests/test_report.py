"""The HTML report of the tiny build, opened in headless Chromium.

`snakemake all --report results/report.html` embeds every figure of the plan (picture and
numbers) with its caption, and the configuration on its landing page
(workflow/report/workflow.rst).  The report renders each result only when one navigates
to it, so the test visits every one, checks that every image on the page loaded and that
the caption is shown, and saves screenshots into its temporary directory.

Needs Debian's ``chromium`` and ``chromium-driver`` (.ci/run installs them); without them
the test fails.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import TINY, BuiltWorkflow, clone_built, plan_of, run_snakemake, tiny_config

pytestmark = pytest.mark.slow

def reported_results() -> list[dict[str, str]]:
    """Every result the tiny build puts into the report: path, caption, category."""
    items = []
    for fig in plan_of(tiny_config()).figures.values():
        pdf, png, numbers = fig.files()
        items.append({"path": png, "caption": fig.caption, "category": fig.category})
        items.append({"path": numbers, "caption": fig.json_caption, "category": fig.category})
    return items


def caption_opening(caption: str) -> str:
    """The caption's first words as the report shows them (no markup)."""
    text = re.sub(r"\s+", " ", caption).replace("*", "").strip()
    return " ".join(text.split()[:6])


def find_binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        f"none of {', '.join(names)} is installed: the report test needs Debian's chromium and "
        "chromium-driver (apt-get install -y chromium chromium-driver; .ci/run installs them)"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = find_binary("chromium", "chromium-browser", "google-chrome")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(find_binary("chromedriver")))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tiny_built: BuiltWorkflow, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = clone_built(tiny_built.dir, tmp_path_factory.mktemp("report") / "wf")
    run_snakemake(workdir, "all", "--configfile", TINY, "--report", "results/report.html")
    return workdir / "results/report.html"


def wait(driver: WebDriver, condition, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def broken_images(driver: WebDriver) -> list[str]:
    """Images on the page that have not loaded (or failed to): the start of their source."""
    return driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))"
    )


def open_result(driver: WebDriver, report: Path, category: str, path: str, button: str) -> None:
    """From the landing page, open ``category`` and press ``button`` on the row of ``path``."""
    driver.get(report.as_uri())
    wait(driver, lambda d: d.find_elements(By.LINK_TEXT, category))[0].click()
    row = wait(driver, lambda d: [r for r in d.find_elements(By.TAG_NAME, "tr") if r.text.strip() == path])[0]
    row.find_element(By.CSS_SELECTOR, f"a[iconname={button}]").click()


def assert_holds(shown: object, expected: object, where: str = "config") -> None:
    """``shown`` has every value of ``expected`` (a config, which defaults may extend)."""
    if isinstance(expected, dict):
        assert isinstance(shown, dict), where
        for name, value in expected.items():
            assert name in shown, f"{where}.{name}"
            assert_holds(shown[name], value, f"{where}.{name}")
    else:
        assert shown == expected, where


def test_report_shows_every_figure_its_caption_and_the_config(report: Path, browser: WebDriver, tmp_path: Path) -> None:
    items = reported_results()
    assert {Path(item["path"]).name for item in items} >= {
        "fig2_omd_ogd_bm.png",
        "fig3_fcn_width.png",
        "figS_fcn_seeds.png",
        "fig5_grokking.png",
    }

    # The landing page: the workflow description and the configuration, as JSON.
    browser.get(report.as_uri())
    pre = wait(browser, lambda d: [p for p in d.find_elements(By.TAG_NAME, "pre") if '"e1"' in p.text])[0]
    assert_holds(json.loads(pre.text), tiny_config())
    assert not broken_images(browser)
    browser.save_screenshot(str(tmp_path / "report.png"))

    for item in items:
        name = Path(item["path"]).name
        if name.endswith(".png"):
            open_result(browser, report, item["category"], item["path"], "eye")
            image = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"img[src*='filename={name}']"))[0]
            wait(browser, lambda d: d.execute_script("return arguments[0].complete", image))
            assert browser.execute_script("return arguments[0].naturalWidth", image) > 100, name
            assert not broken_images(browser), name
            browser.save_screenshot(str(tmp_path / name))
        open_result(browser, report, item["category"], item["path"], "information-circle")
        opening = caption_opening(item["caption"])
        assert wait(browser, lambda d: opening in re.sub(r"\s+", " ", d.find_element(By.TAG_NAME, "body").text)), (
            name,
            opening,
        )
        assert not broken_images(browser), name
