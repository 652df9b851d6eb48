"""The shared run's explorer page: its data against the run's own files, and the page in a real browser.

The browser is Debian's Chromium driven by Selenium through Debian's chromedriver
(nothing downloads a browser). Where they are missing, the test installs them with
apt as the SLURM test installs its packages, and is skipped, with the reason, where
it cannot (not root, no apt). The screenshot goes to ``test-results/explorer.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import REPO

from truthmap.explorer import read_embedded, render
from truthmap.files import read_jsonl, read_tsv

RESULTS = Path("results") / "SmolLM2-135M-Instruct" / "builtin"
SCREENSHOTS = REPO / "test-results"
PACKAGES = ("chromium", "chromium-driver", "fonts-dejavu-core")


def page_data(workdir: Path) -> dict:
    return read_embedded((workdir / RESULTS / "explorer.html").read_text(encoding="utf-8"))


def test_explorer_embeds_every_cell_with_its_scores(workdir):
    data = page_data(workdir)
    cells = {(c["site"], c["layer"], c["token"]): c for c in
             (json.loads(p.read_text()) for p in (workdir / RESULTS / "probes" / "cells").rglob("*.json"))}
    assert len(data["cells"]) == len(cells) and data["tokens"] and data["sites"]
    for entry in data["cells"]:
        cell = cells[(entry["site"], entry["layer"], entry["token"])]
        assert entry["auc"] == pytest.approx(cell["auc"]) if cell["auc"] is not None else entry["auc"] is None
        ids = [data["questions"][i]["id"] for i in data["question_sets"][entry["qset"]]]
        assert ids == cell["test_ids"]
        assert entry["scores"] == pytest.approx(cell["test_scores"], rel=1e-5, abs=1e-9)
    size = (workdir / RESULTS / "explorer.html").stat().st_size
    assert size < 5e6


def test_explorer_questions_match_the_labels_and_the_split(workdir):
    data = page_data(workdir)
    labels = {r["id"]: r for p in sorted((workdir / RESULTS / "labels").glob("*.jsonl")) for r in read_jsonl(p)}
    split = {r["id"]: r for r in read_tsv(workdir / RESULTS / "probes" / "split.tsv")}
    questions = {q["id"]: q for q in read_jsonl(workdir / "results/datasets/builtin/questions.jsonl")}
    first = data["tokens"].index("exact_answer_first")
    tested = {q for p in (workdir / RESULTS / "probes" / "cells").rglob("*.json") for q in json.loads(p.read_text())["test_ids"]}
    assert {q["id"] for q in data["questions"]} == tested
    assert all(split[q]["split"] == "test" for q in tested)
    for q in data["questions"]:
        label = labels[q["id"]]
        assert q["wrong"] == int(split[q["id"]]["label"]) == int(not label["correct"])
        assert q["aliases"] == questions[q["id"]]["aliases"]
        assert q["group"] == questions[q["id"]]["meta"]["domain"]
        if label["exact_answer"] is None:
            assert q["exact"] is None
            continue
        assert q["answer"][q["exact"][0]:q["exact"][1]] == label["exact_answer"]
        mark = q["marks"][first]
        if mark is not None:  # the first exact-answer token covers the exact answer's first character
            assert mark[0] <= q["exact"][0] < mark[1]


# --------------------------------------------------------------------------- in a real browser


def chromium_or_skip() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver, installed with apt when missing."""
    pytest.importorskip("selenium", reason="the browser test needs selenium (requirements.txt)")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("the browser test needs Debian's chromium and chromium-driver, or root and apt-get to "
                        f"install them: apt-get install {' '.join(PACKAGES)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
            if done.returncode != 0:
                pytest.skip(f"could not install chromium with apt ({' '.join(cmd)}): {done.stderr.strip()[-300:]}")
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the page did not reach the expected state")


def severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_explorer_in_a_real_browser(workdir, browser, tmp_path):
    page = workdir / RESULTS / "explorer.html"
    data = page_data(workdir)
    started = time.monotonic()
    browser.get(page.as_uri())
    wait_for(lambda: browser.find_element("id", "row-count").get_attribute("data-rows"))
    load_seconds = time.monotonic() - started
    assert severe(browser) == []

    # Clicking a cell opens that cell: its layer and token, and a ROC curve of its own scores.
    title = browser.find_element("id", "cell-title")
    before = (title.get_attribute("data-layer"), title.get_attribute("data-token"),
              browser.find_element("id", "roc-curve").get_attribute("d"))
    target = next(c for c in reversed(data["cells"]) if c["auc"] is not None
                  and (str(c["layer"]), c["token"]) != before[:2])
    rect = browser.find_element(
        "css selector",
        f'#heatmaps rect.cell[data-site="{target["site"]}"][data-layer="{target["layer"]}"][data-token="{target["token"]}"]')
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(rect).perform()  # hovering shows the cell's AUC, interval and n
    tip = browser.find_element("id", "tooltip")
    wait_for(tip.is_displayed)
    assert f"AUC {target['auc']:.3f} [{target['ci_low']:.3f}, {target['ci_high']:.3f}]" in tip.text
    assert f"n = {target['n_test']:.0f} test questions" in tip.text
    rect.click()
    wait_for(lambda: title.get_attribute("data-token") == target["token"]
             and title.get_attribute("data-layer") == str(target["layer"]))
    curve = browser.find_element("id", "roc-curve")
    assert curve.get_attribute("d") != before[2]
    assert float(curve.get_attribute("data-auc")) == pytest.approx(target["auc"], abs=1e-3)
    assert "AUC" in browser.find_element("id", "cell-stats").text

    # The right/wrong filter keeps exactly the wrong answers among the cell's test questions.
    count = browser.find_element("id", "row-count")
    total = int(count.get_attribute("data-rows"))
    wrong = sum(data["questions"][i]["wrong"] for i in data["question_sets"][target["qset"]])
    browser.find_element("css selector", '#filter-label option[value="1"]').click()
    wait_for(lambda: count.get_attribute("data-rows") == str(wrong))
    assert 0 < wrong < total
    assert len(browser.find_elements("css selector", "#questions tbody tr")) == wrong
    assert not browser.find_elements("css selector", "#questions tbody tr.right")
    browser.find_element("css selector", '#filter-label option[value=""]').click()

    # Sorting the detectors by method puts their names in order.
    browser.find_element("css selector", '#detectors th[data-key="method"]').click()
    methods = [r.get_attribute("data-method") for r in browser.find_elements("css selector", "#detectors tbody tr")]
    assert methods == sorted(methods) and len(methods) == len(data["detectors"])

    # A second run beside it: every cell's AUC 0.1 lower there gives a difference of +0.10 everywhere.
    other = dict(data, title="the same run, every AUC 0.1 lower",
                 cells=[dict(c, auc=None if c["auc"] is None else c["auc"] - 0.1) for c in data["cells"]])
    other_page = tmp_path / "other.html"
    other_page.write_text(render(other), encoding="utf-8")
    browser.find_element("id", "compare-file").send_keys(str(other_page))
    status = browser.find_element("id", "compare-status")
    n_ok = sum(c["auc"] is not None for c in data["cells"])
    wait_for(lambda: status.get_attribute("data-cells") == str(n_ok))
    assert "mean difference +0.100" in status.text
    labels = {t.text for t in browser.find_elements("css selector", "#diff-heatmaps text") if t.text.startswith("+")}
    assert labels == {"+0.10"}
    assert severe(browser) == []

    browser.execute_script("window.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(exist_ok=True)
    rect.click()
    assert browser.save_screenshot(str(SCREENSHOTS / "explorer.png"))
    print(f"explorer: {page.stat().st_size / 1e6:.2f} MB, loaded in {load_seconds:.2f} s; "
          f"screenshot {SCREENSHOTS / 'explorer.png'}")
