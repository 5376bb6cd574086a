"""The HTML report in a real headless Chromium: rows, headers, sorting by a click, a screenshot."""

from __future__ import annotations

import os
import shutil

import pytest

from scfm_bench.leaderboard import build_report
from scfm_bench.leaderboard.html import to_html

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def driver(tmp_path):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium/chromium-driver missing in CI: `make test-deps` installs them")
        pytest.skip("chromium and chromium-driver are not installed (run `make test-deps`)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for f in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"]:
        opts.add_argument(f)
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=chromedriver))
    yield d
    d.quit()


def test_html_report_loads_sorts_and_renders(driver, rec, tmp_path):
    from selenium.webdriver.common.by import By

    p = {"primary": "total"}
    records = []
    for model, v in [("pca", 0.5), ("hvg", 0.25), ("scgpt", 0.75)]:
        records += [rec(model, "ari", v, params=p), rec(model, "total", v, family="aggregate", params=p)]
    records.append(rec("broken", "*", status="failed", reason="NaN in embedding", family=None))
    html = tmp_path / "report.html"
    html.write_text(to_html(build_report(records, kinds={"pca": "baseline", "hvg": "baseline"})))
    assert "http://" not in html.read_text() and "https://" not in html.read_text()  # self-contained

    driver.get(html.as_uri())
    table = driver.find_elements(By.CSS_SELECTOR, "table.sortable")[0]
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers[:4] == ["rank", "model", "ari ↑", "total ↑"]

    def models():
        return [tr.find_elements(By.TAG_NAME, "td")[1].text for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

    assert models() == ["scgpt", "pca", "hvg", "broken"]
    assert "NaN in embedding" in table.text
    table.find_elements(By.CSS_SELECTOR, "thead th")[2].click()  # ari ascending; "—" sorts after numbers
    assert models() == ["hvg", "pca", "scgpt", "broken"]
    table.find_elements(By.CSS_SELECTOR, "thead th")[2].click()
    assert models()[:3] == ["scgpt", "pca", "hvg"]
    assert len(driver.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png;base64,']")) == 2
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("SCFM_BENCH_SCREENSHOT"):
        shutil.copy(shot, os.environ["SCFM_BENCH_SCREENSHOT"])
