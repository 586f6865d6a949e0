"""The page at ``/`` driven in headless Chromium (Debian's ``chromium`` + ``chromium-driver``):
type a sentence, run beam search, read the n-best list and the attention heatmap; forecast."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from transduce.inference.translate import DecodeOptions, Translator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no Chromium: apt-get install chromium chromium-driver (.ci/run does)",
)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="transduce-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-component-update",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def series_levels(run) -> list[str]:
    """The levels the series run was calibrated for, as /v1/models lists them."""
    from transduce.serve.series_model import SeriesModel

    return SeriesModel.load("series", run).levels(finite=True)


def wait_for(driver, css: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def test_translate_with_beam_and_heatmap(browser, server, text_run, qa_run, series_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sentence = "αβγδε"
    want = Translator.load(text_run).decode([sentence], DecodeOptions(beam=3, nbest=3, alpha=0.6))
    runs = ["--model", str(text_run), "--model", f"qa={qa_run}", "--model", f"series={series_run}"]
    with server(*runs) as url:
        browser.get(url + "/")
        wait_for(browser, "body[data-ready]")
        Select(browser.find_element(By.ID, "model")).select_by_value(text_run.name)
        browser.find_element(By.ID, "in-text").send_keys(sentence)
        browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=beam]").click()
        for field, value in (("beam", "3"), ("nbest", "3")):
            box = browser.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        browser.find_element(By.ID, "run").click()
        wait_for(browser, "#heatmap td")
        texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results li .text")]
        assert texts == [h.text or "(empty)" for h in want[0]]
        best = want[0][0]
        rows = browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")
        heads = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#heatmap thead th")]
        assert heads[1:] == best.src_tokens == list(sentence)  # Greek, as typed
        assert len(rows) == len(best.out_tokens)
        cells = browser.find_elements(By.CSS_SELECTOR, "#heatmap td")
        assert len(cells) == len(best.out_tokens) * len(best.src_tokens)
        weights = [float(c.get_attribute("data-weight")) for c in cells]
        assert max(weights) > 0.3  # real weights, drawn with colour
        assert cells[weights.index(max(weights))].value_of_css_property("background-color") != (
            "rgba(0, 0, 0, 0)"
        )
        shot = os.environ.get("TRANSDUCE_PAGE_SCREENSHOT") or str(tmp_path / "page.png")
        browser.save_screenshot(shot)

        # an API error shows up as a message, and the page keeps working
        box = browser.find_element(By.ID, "beam")
        box.clear()
        box.send_keys("99")
        browser.find_element(By.ID, "run").click()
        error = wait_for(browser, "#error:not(.hidden)")
        assert "beam" in error.text

        # a two-input model gets one box per field
        Select(browser.find_element(By.ID, "model")).select_by_value("qa")
        browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=greedy]").click()
        browser.find_element(By.ID, "in-question").send_keys("abc")
        browser.find_element(By.ID, "in-document").send_keys("xyz")
        browser.find_element(By.ID, "run").click()
        wait_for(browser, "#results li .text")
        assert "abc" in browser.find_element(By.ID, "results").text

        Select(browser.find_element(By.ID, "model")).select_by_value("series")
        browser.find_element(By.ID, "values").send_keys("10 20 30 20 10 20 30 20 10 20 30 20")
        browser.find_element(By.ID, "forecast").click()
        wait_for(browser, "#forecast-line")
        status = browser.find_element(By.ID, "status").text
        assert "forecast of 6 steps" in status
        # the run is calibrated for intervals: the page asks for every level and shades each
        levels = series_levels(series_run)
        assert levels, "the series run has no finite interval levels"
        shown = [k for k in levels if k in ("80", "95")] or levels[-2:]
        assert f"{shown[0]}%" in status
        for level in shown:
            band = browser.find_element(By.ID, f"band-{level}")
            assert band.get_attribute("d").endswith("Z")
        browser.save_screenshot(str(tmp_path / "forecast.png"))


def test_ct2_export_from_the_page_drops_what_it_cannot_do(browser, server, exports):
    """The page's beam search sends a length penalty and asks for attention; for a
    CTranslate2 model it leaves both out (the model lists them as unsupported)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from transduce.runtime.ct2 import CT2Translator
    from transduce.runtime.translate import DecodeOptions as RuntimeOptions

    want = CT2Translator.load(exports["ct2"], 1).decode(["abcd"], RuntimeOptions(beam=3, nbest=2))
    with server("--model", f"fast={exports['ct2']}") as url:
        browser.get(url + "/")
        wait_for(browser, "body[data-ready]")
        Select(browser.find_element(By.ID, "model")).select_by_value("fast")
        assert "(ct2)" in browser.find_element(By.ID, "about").text
        assert not browser.find_element(By.ID, "alpha").is_enabled()
        browser.find_element(By.ID, "in-text").send_keys("abcd")
        browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=beam]").click()
        for field, value in (("beam", "3"), ("nbest", "2")):
            box = browser.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        browser.find_element(By.ID, "run").click()
        wait_for(browser, "#results li .text")
        texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results li .text")]
        assert texts == [h.text or "(empty)" for h in want[0]]
        assert "hidden" in browser.find_element(By.ID, "error").get_attribute("class")


def test_docs_render_offline(browser, server, text_run):
    """Swagger UI at /docs from this server's own assets: every script and stylesheet the
    page loads is local, and the UI lists the API's operations."""
    from selenium.webdriver.common.by import By

    with server("--model", str(text_run)) as url:
        browser.get(url + "/docs")
        wait_for(browser, ".opblock-summary-path")
        paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert {"/v1/translate", "/v1/forecast", "/health/ready"} <= {p.strip() for p in paths}
        sources = browser.execute_script(
            "return [...document.scripts].map(s => s.src).concat("
            "[...document.querySelectorAll('link[href]')].map(l => l.href))"
        )
        assert sources and all(s.startswith(url) for s in sources if s), sources


# What the page records of each render while a reply streams: the texts shown, "*" marking
# those still being decoded. (Function declarations of the page's script are globals.)
RECORD_RENDERS = """
window.__seen = [];
const render = window.renderResults;
window.renderResults = function () {
  render();
  window.__seen.push([...document.querySelectorAll('#results li .text')].map(
    (e) => e.textContent + (e.closest('.streaming') ? '*' : '')));
};
"""


def test_streamed_output_long_input_and_errors(browser, server, text_run, tmp_path):
    """The output shows as it streams (partial texts, then the results the API gives); a
    long input's heatmap scrolls inside its panel instead of widening the page; an error
    clears the previous results."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    lines = ["αβγδε", "ζηθαβγ", "γδ"]
    want = Translator.load(text_run).translate(lines)
    with server("--model", str(text_run)) as url:
        browser.get(url + "/")
        wait_for(browser, "body[data-ready]")
        assert browser.find_element(By.ID, "stream").is_selected()  # streaming by default
        browser.find_element(By.ID, "in-text").send_keys("\n".join(lines))
        browser.execute_script(RECORD_RENDERS)
        browser.find_element(By.ID, "run").click()
        wait_for(browser, "#heatmap td")
        texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results li .text")]
        assert texts == want
        seen = browser.execute_script("return window.__seen")
        partial = [t[:-1] for shot in seen for t in shot if t.endswith("*")]
        assert partial, f"nothing was shown while decoding: {seen}"
        assert all(any(w.startswith(p) for w in want) for p in partial if p != "(empty)")
        assert seen[-1] == want  # the last render: the results, none still streaming
        browser.save_screenshot(
            os.environ.get("TRANSDUCE_STREAM_SCREENSHOT") or str(tmp_path / "stream.png")
        )

        box = browser.find_element(By.ID, "in-text")
        box.clear()
        box.send_keys("αβγδεζηθ" * 12)  # 96 characters: a heatmap far wider than the panel
        browser.find_element(By.ID, "run").click()
        # the new heatmap (one column per source character), shown: not the previous one
        WebDriverWait(browser, 60).until(
            lambda d: d.execute_script(
                "const r = document.querySelector('#heatmap tbody tr'),"
                " a = document.getElementById('attention');"
                "return r !== null && r.children.length > 90 && a.clientWidth > 0;"
            )
        )
        sizes = browser.execute_script(
            "const a = document.getElementById('attention'), o = document.getElementById('output');"
            "return [a.scrollWidth, a.clientWidth, o.scrollWidth, o.clientWidth,"
            " document.documentElement.scrollWidth, window.innerWidth];"
        )
        att_scroll, att_width, out_scroll, out_width, page, window_width = sizes
        assert att_scroll > att_width  # the heatmap scrolls inside its box...
        assert out_scroll <= out_width + 1 and page <= window_width  # ...and widens nothing
        browser.save_screenshot(
            os.environ.get("TRANSDUCE_WIDE_SCREENSHOT") or str(tmp_path / "wide.png")
        )

        browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=beam]").click()
        beam = browser.find_element(By.ID, "beam")
        beam.clear()
        beam.send_keys("99")
        browser.find_element(By.ID, "run").click()
        assert "beam" in wait_for(browser, "#error:not(.hidden)").text
        assert browser.find_elements(By.CSS_SELECTOR, "#results li") == []
        assert "hidden" in browser.find_element(By.ID, "attention").get_attribute("class")


def test_forecast_bands_scaled_to_the_series(browser, server, tmp_path_factory, tmp_path):
    """A run trained with interval levels stores its normalized calibration: for an input
    of two horizons or more the page asks for bands scaled to that series and says so; a
    shorter input gets the run's common bands."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.forecasting.conftest import train_quantile_run

    tmp, hist = train_quantile_run(tmp_path_factory.mktemp("page_norm"))
    assert (tmp / "run" / "normalized.json").is_file()
    with server("--model", f"q={tmp / 'run'}") as url:
        browser.get(url + "/")
        wait_for(browser, "body[data-ready]")
        Select(browser.find_element(By.ID, "model")).select_by_value("q")
        for values, scaled in ((hist[0][:30], True), (hist[0][:8], False)):
            browser.execute_script("document.getElementById('forecast-line')?.remove()")
            box = browser.find_element(By.ID, "values")
            box.clear()
            box.send_keys(" ".join(f"{v:.2f}" for v in values))
            browser.find_element(By.ID, "forecast").click()
            wait_for(browser, "#forecast-line")
            status = browser.find_element(By.ID, "status").text
            assert "80% / 95% intervals" in status, status
            assert ("scaled to this series" in status) == scaled, status
            for level in ("80", "95"):
                assert browser.find_element(By.ID, f"band-{level}").get_attribute("d").endswith("Z")
            browser.save_screenshot(str(tmp_path / f"scaled-{scaled}.png"))
