"""The HTML report of the tiny build, opened in headless Chromium.

`snakemake all --report results/report.html` embeds every figure of the plan (picture and
numbers) with its caption, and the configuration on its landing page
(workflow/report/workflow.rst).  The report renders each result only when one navigates
to it, so the test visits every one, checks that every image on the page loaded and that
the caption is shown, and saves screenshots into its temporary directory.  In a window of
1400x900 the landing page opens at its top (the report's stylesheet, workflow/report/report.css,
which the default profile names) and every figure fits the window's width.

A report made when only some figures are built holds those and names the others on its
landing page (rules/report.smk).

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
import yaml
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver, WebElement
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import (
    ROOT,
    TINY,
    BuiltWorkflow,
    clone_built,
    plan_of,
    planned_jobs,
    results_state,
    run_snakemake,
    tiny_config,
)

pytestmark = pytest.mark.slow

#: The browser window (width, height): a laptop's, where the report must be usable.
WINDOW = (1400, 900)


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
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
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


def open_landing_page(driver: WebDriver, report: Path) -> WebElement:
    """Open the report's landing page; return its configuration block once it is shown."""
    driver.get(report.as_uri())
    return wait(driver, lambda d: [p for p in d.find_elements(By.TAG_NAME, "pre") if '"e1"' in p.text])[0]


def page_text(driver: WebDriver) -> str:
    return re.sub(r"\s+", " ", driver.find_element(By.TAG_NAME, "body").text)


#: Where the landing page's opening paragraph and configuration block are, and how far
#: the page and every scroll container around them are scrolled.
LANDING_LAYOUT = """
const opening = Array.from(document.querySelectorAll('#app p'))
    .find(p => p.textContent.startsWith('equivdyn decides'));
const config = Array.from(document.querySelectorAll('#app pre'))
    .find(p => p.textContent.includes('"e1"'));
const box = e => { const r = e.getBoundingClientRect(); return {top: r.top, left: r.left, right: r.right}; };
const scrolled = [document.scrollingElement.scrollTop];
for (let e = opening.parentElement; e; e = e.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(e).overflowY)) scrolled.push(e.scrollTop);
}
return {width: innerWidth, height: innerHeight, opening: box(opening), config: box(config), scrolled: scrolled};
"""


def test_report_shows_every_figure_its_caption_and_the_config(report: Path, browser: WebDriver, tmp_path: Path) -> None:
    items = reported_results()
    assert {Path(item["path"]).name for item in items} >= {
        "fig2_omd_ogd_bm.png",
        "fig3_fcn_width.png",
        "figS_fcn_seeds.png",
        "fig5_grokking.png",
    }

    # The landing page: the workflow description and the configuration, as JSON; every
    # figure of the plan is built, so none is named as not built.
    pre = open_landing_page(browser, report)
    assert_holds(json.loads(pre.text), tiny_config())
    assert not broken_images(browser)
    assert "Not built yet" not in page_text(browser)
    browser.save_screenshot(str(tmp_path / "report.png"))

    for item in items:
        name = Path(item["path"]).name
        if name.endswith(".png"):
            open_result(browser, report, item["category"], item["path"], "eye")
            image = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"img[src*='filename={name}']"))[0]
            wait(browser, lambda d: d.execute_script("return arguments[0].complete", image))
            assert browser.execute_script("return arguments[0].naturalWidth", image) > 100, name
            assert not broken_images(browser), name
            # The whole width of the figure is in the window, and its top.
            left, top, right, width = browser.execute_script(
                "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, innerWidth]", image
            )
            assert left >= 0 and top >= 0 and right <= width, (name, left, top, right, width)
            browser.save_screenshot(str(tmp_path / name))
        open_result(browser, report, item["category"], item["path"], "information-circle")
        opening = caption_opening(item["caption"])
        assert wait(browser, lambda d: opening in page_text(d)), (name, opening)
        assert not broken_images(browser), name


def test_the_landing_page_opens_at_its_top(report: Path, browser: WebDriver, tmp_path: Path) -> None:
    """Snakemake centres each view of its report in a scroll container, which cannot scroll
    to what overflows above its top; the report's stylesheet starts the view at the top, so
    the landing page's opening and its configuration block are in the window."""
    open_landing_page(browser, report)
    assert browser.get_window_size() == {"width": WINDOW[0], "height": WINDOW[1]}
    layout = browser.execute_script(LANDING_LAYOUT)
    browser.save_screenshot(str(tmp_path / "landing.png"))
    assert all(top == 0 for top in layout["scrolled"]), layout  # the page and its scroll containers
    for part in ("opening", "config"):
        box = layout[part]
        assert 0 <= box["top"] < layout["height"], (part, layout)
        assert 0 <= box["left"] and box["right"] <= layout["width"], (part, layout)


def test_the_default_profile_styles_the_report() -> None:
    """`snakemake ... --report FILE` uses workflow/report/report.css (the profile is read
    by every run in the checkout; a path is taken from the profile's folder if it is there)."""
    profile = ROOT / "profiles/default"
    sheet = yaml.safe_load((profile / "config.yaml").read_text()).get("report-stylesheet")
    assert sheet, "profiles/default/config.yaml names no report-stylesheet"
    path = profile / sheet if (profile / sheet).exists() else ROOT / sheet
    assert path.resolve() == (ROOT / "workflow/report/report.css").resolve(), sheet


def test_a_report_of_a_partial_build_holds_the_figures_built(
    tiny_built: BuiltWorkflow, browser: WebDriver, tmp_path: Path
) -> None:
    """Built without fig3 and fig5 (say, offline without MNIST, and a figure that failed),
    the report of `all`, and of the targets fig2 and fig5, holds the figures built and
    names the others on its landing page; making it writes nothing under results/ and
    changes nothing a run plans."""
    workdir = clone_built(tiny_built.dir, tmp_path / "wf")
    figures = list(plan_of(tiny_config()).figures.values())
    missing = [fig for fig in figures if fig.target in ("fig3", "fig5")]
    assert len(missing) == 2 and len(figures) > 3
    for fig in missing:
        for path in fig.files():
            (workdir / path).unlink()
    before = results_state(workdir)

    def reported(figs: list) -> set[str]:
        return {path for fig in figs for path in fig.files() if not path.endswith(".pdf")}

    for targets, built, not_built in (
        (["all"], [fig for fig in figures if fig not in missing], missing),
        (["fig2", "fig5"], [fig for fig in figures if fig.target == "fig2"], [fig for fig in missing if fig.target == "fig5"]),
    ):
        report = workdir / f"report-{'-'.join(targets)}.html"
        out = run_snakemake(workdir, *targets, "--configfile", TINY, "--report", report.name).stdout
        assert "Report created" in out, out[-3000:]
        open_landing_page(browser, report)
        assert set(browser.execute_script("return Object.keys(results)")) == reported(built), targets
        text = page_text(browser)
        assert "Not built yet" in text, (targets, text[:3000])
        for fig in figures:
            named = f"{fig.stem} (snakemake {fig.target})"
            assert (named in text) == (fig in not_built), (targets, named)
        assert not broken_images(browser)
        browser.save_screenshot(str(tmp_path / f"{report.stem}.png"))

    assert results_state(workdir) == before
    assert planned_jobs(workdir, "all", "--configfile", TINY) == {"plot": len(missing)}
