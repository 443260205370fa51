"""report.html in a real browser (headless Chromium through selenium): issue 12's contract.

Two runs: the reference study's six lm-eval files (1,202 samples, reasoning up to ~106,000 characters),
imported and analysed, for the explorer's counts, size and time-to-rows; and a small synthetic
HumanEval+ run (three models, k = 3 repeats, proxy logs) whose prompt, reasoning and answer carry
script-injection payloads, for untrusted-text rendering, several comparisons and the repeats grid.
Expected values come from summary.json and from the raw files, never from the page's own code.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.hashing import request_hash
from harness.reasoning import split_reasoning

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "reference" / "lm-eval-outputs"
REF_FILES = {  # (model, bench): (samples, results), as named inside the .gz (see test_import_reference.py)
    ("distilled", "aime24"): ("samples_aime24_2026-02-21T18-01-15.400547.jsonl", "aime24_2026-02-21T18-01-15.400547.json"),
    ("distilled", "aime25"): ("samples_aime25_2026-02-21T18-00-36.367478.jsonl", "aime25_2026-02-21T18-00-36.367478.json"),
    ("distilled", "ifeval"): ("samples_ifeval_2026-02-21T18-52-43.750841.jsonl", "ifeval_2026-02-21T18-52-43.750841.json"),
    ("base", "aime24"): ("samples_aime24_2026-02-21T20-53-11.560634.jsonl", "qwen3-14b-aime24_2026-02-21T20-53-11.560634.json"),
    ("base", "aime25"): ("samples_aime25_2026-02-21T20-31-30.971709.jsonl", "qwen3-14b-aime25_2026-02-21T20-31-30.971709.json"),
    ("base", "ifeval"): ("samples_ifeval_2026-02-21T21-45-55.981090.jsonl", "qwen3-14b-ifeval_2026-02-21T21-45-55.981090.json"),
}
OUTCOMES = ("both", "only_candidate", "only_baseline", "neither")
MAX_INITIAL_BYTES = 2 * 1024 * 1024
MAX_ROWS_S = 3.0
# Each payload would raise window.__pwned if the page ever parsed model text as HTML or script.
PAYLOADS = {
    "prompt": 'Solve it. <img src=x onerror="window.__pwned=(window.__pwned||0)+1"> </script><script>window.__pwned=1</script>',
    "reasoning": '<script>window.__pwned=(window.__pwned||0)+1</script> thinking "});window.__pwned=1;// <svg onload="window.__pwned=1">',
    "answer": 'def f():\n    return 1  <img src=x onerror="window.__pwned=(window.__pwned||0)+1"> <iframe srcdoc="<script>parent.__pwned=1</script>">',
}


# ---------------------------------------------------------------------------------------------
# browser


@pytest.fixture(scope="module")
def driver():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail("chromium and chromedriver are needed: run .ci/install-browser.sh (Debian packages)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(chromedriver), options=opts)
    yield drv
    drv.quit()


def console_errors(drv) -> list[dict]:
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def open_page(drv, page: Path) -> float:
    """Load the page; wall-clock seconds until the rows are painted (WebDriver round trips included)."""
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get_log("browser")  # drop earlier messages
    t0 = time.monotonic()
    drv.get(page.resolve().as_uri())
    WebDriverWait(drv, 30).until(lambda d: d.execute_script("return document.body.hasAttribute('data-rows-painted')"))
    return time.monotonic() - t0


def visible_rows(drv) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in drv.execute_script(
        "return Array.from(document.querySelectorAll('[data-sample]')).filter(r => r.offsetParent !== null)"
        ".map(r => [r.dataset.sample, r.dataset.benchmark, r.dataset.outcome])")]


def click(drv, css: str) -> None:
    el = drv.find_element("css selector", css)
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()


def check_filters(drv, benchmarks: dict) -> None:
    """Every benchmark x outcome filter shows exactly summary.json's paired cell count."""
    for bench, blk in benchmarks.items():
        if bench == "aime_combined" or not blk.get("paired"):
            continue
        click(drv, f'[data-filter-benchmark="{bench}"]')
        for outcome in OUTCOMES:
            click(drv, f'[data-filter-outcome="{outcome}"]')
            rows = visible_rows(drv)
            assert len(rows) == blk["paired"][outcome], (bench, outcome, len(rows), blk["paired"])
            assert {(b, o) for _, b, o in rows} <= {(bench, outcome)}
        click(drv, '[data-filter-outcome=""]')
        assert len(visible_rows(drv)) == blk["n"] == sum(blk["paired"][o] for o in OUTCOMES)
    click(drv, '[data-filter-benchmark=""]')


def open_row(drv, sample: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    click(drv, f'[data-sample="{sample}"]:not([hidden])')
    WebDriverWait(drv, 10).until(lambda d: d.execute_script(
        "return document.querySelectorAll('[data-detail] [data-model] pre.answer').length >= 2"))


def open_reasoning(drv, model: str) -> str:
    """Expand a model's collapsed reasoning; its text is filled in by the (asynchronous) toggle event."""
    from selenium.webdriver.support.ui import WebDriverWait

    click(drv, f'[data-detail] [data-model="{model}"] details summary')
    WebDriverWait(drv, 10).until(lambda d: model_text(d, model, "pre.reasoning"))
    return model_text(drv, model, "pre.reasoning")


def model_text(drv, model: str, css: str) -> str:
    return drv.execute_script(f"return document.querySelector('[data-detail] [data-model=\"{model}\"] {css}').textContent")


# ---------------------------------------------------------------------------------------------
# the reference study


@pytest.fixture(scope="module")
def reference_report(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref-html") / "run"
    for (model, bench), names in REF_FILES.items():
        assert main(["import", "--run", str(run), "--model", model, "--benchmark", bench,
                     *(str(REF / f"{n}.gz") for n in names)]) == 0
    assert main(["analyze", "--run", str(run), "--candidate", "distilled", "--baseline", "base"]) == 0
    assert main(["report", "--run", str(run)]) == 0
    return run, json.loads((run / "analysis" / "summary.json").read_text())


def test_samples_jsonl_matches_raw_files(reference_report):
    """analysis/samples.jsonl holds every imported generation with the raw file's text and recorded score."""
    run, _ = reference_report
    recs = {(r["model"], r["benchmark"], r["item"]): r for r in map(json.loads, (run / "analysis" / "samples.jsonl").open())}
    assert len(recs) == 1202
    n = 0
    for (model, bench), (samples, _) in REF_FILES.items():
        for line in gzip.open(REF / f"{samples}.gz", "rt"):
            raw = json.loads(line)
            item = str(raw["doc"].get("ID") or raw["doc"].get("id") or raw["doc"].get("key"))
            rec = recs[(model, bench, item)]
            sp = split_reasoning(raw["resps"][0][0])
            assert (rec["reasoning"], rec["answer"]) == (sp.reasoning, sp.answer)
            metric = "exact_match" if bench != "ifeval" else "prompt_level_strict_acc"
            assert rec["scores"]["as_recorded"] == bool(raw[metric])
            assert rec["schema_version"] == 1 and rec["prompt"]
            n += 1
    assert n == 1202


def test_reference_report_in_browser(driver, reference_report, tmp_path):
    run, s = reference_report
    page = run / "report.html"
    rows_s = open_page(driver, page)
    # Navigation start -> rows in the DOM, and -> the frame that shows them (the page's own clock).
    in_dom_ms, painted_ms = driver.execute_script("return [window.harnessRowsReadyMs, window.harnessRowsPaintedMs]")
    # Everything loaded before the rows appear: the page and what it pulls in at once (the figures).
    initial = driver.execute_script(
        "return Array.from(document.querySelectorAll('img[src], script[src], link[href]')).map(e => e.src || e.href)")
    from urllib.parse import unquote, urlparse

    files = [page] + [Path(unquote(urlparse(u).path)) for u in initial]
    assert all(f.is_relative_to(run) and f.is_file() for f in files), files  # nothing outside the run directory
    assert not any(u.endswith(".js") for u in initial)  # sample sidecars load only when a row is opened
    # Resource Timing lists network fetches (file:// loads are not listed): there must be none.
    assert driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") == []
    initial_bytes = sum(f.stat().st_size for f in files)
    n_rows = len(driver.find_elements("css selector", "[data-sample]"))
    sidecar_bytes = sum(f.stat().st_size for f in (run / "report_files").rglob("*.js"))
    print(f"\nreference study report.html: {page.stat().st_size:,} bytes; with {len(files) - 1} figure(s) "
          f"{initial_bytes:,} bytes loaded before rows; {n_rows} rows in the DOM after {in_dom_ms:.0f} ms, painted after "
          f"{painted_ms:.0f} ms (wall clock through WebDriver {rows_s:.2f} s); sidecars {sidecar_bytes:,} bytes")
    assert initial_bytes <= MAX_INITIAL_BYTES
    assert painted_ms <= MAX_ROWS_S * 1000
    assert n_rows == sum(s["benchmarks"][b]["n"] for b in ("aime24", "aime25", "ifeval"))
    assert console_errors(driver) == []
    # The tables are static HTML: readable without JavaScript.
    html_text = page.read_text(encoding="utf-8")
    for bench in ("aime24", "ifeval"):
        c = s["benchmarks"][bench]["scores"]["distilled"]
        assert f"{c['correct']}/{c['n']}" in html_text
    assert "<table>" in html_text.split('<section class="explorer"')[0]

    check_filters(driver, s["benchmarks"])
    # Open the row with the longest baseline reasoning: both models' answers, exactly as in the raw files.
    longest, item_id = -1, None
    for line in gzip.open(REF / f"{REF_FILES[('base', 'aime25')][0]}.gz", "rt"):
        raw = json.loads(line)
        if len(raw["resps"][0][0]) > longest:
            longest, item_id, base_text = len(raw["resps"][0][0]), str(raw["doc"]["id"]), raw["resps"][0][0]
    dist_text = next(json.loads(ln)["resps"][0][0] for ln in gzip.open(REF / f"{REF_FILES[('distilled', 'aime25')][0]}.gz", "rt")
                     if str(json.loads(ln)["doc"]["id"]) == item_id)
    click(driver, '[data-filter-benchmark="aime25"]')
    open_row(driver, f"aime25:{item_id}")
    assert model_text(driver, "base", "pre.answer") == split_reasoning(base_text).answer
    assert model_text(driver, "distilled", "pre.answer") == split_reasoning(dist_text).answer
    assert not driver.execute_script("return document.querySelector('[data-detail] [data-model=\"base\"] details').open")
    shot = tmp_path / "report-html.png"
    driver.execute_script("window.scrollTo(0, document.getElementById('explorer').offsetTop - 40);"
                          "const d = document.querySelector('[data-detail]'); d.scrollTop = d.querySelector('pre.gold').offsetTop - 60")
    driver.save_screenshot(str(shot))
    _keep_screenshot(shot)
    assert open_reasoning(driver, "base") == split_reasoning(base_text).reasoning
    assert console_errors(driver) == []


def _keep_screenshot(shot: Path) -> None:
    """HARNESS_DOCS_SCREENSHOT=1 copies the screenshot, shrunk to a small palette PNG, to docs/."""
    if os.environ.get("HARNESS_DOCS_SCREENSHOT") != "1":
        return
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    img = img.resize((img.width * 7 // 10, img.height * 7 // 10), Image.LANCZOS)
    img.quantize(colors=64).save(REPO / "docs" / "report-html.png", optimize=True)


# ---------------------------------------------------------------------------------------------
# a synthetic run: injection payloads, three models (two comparisons), three repeats, proxy logs

TASKS = [f"HumanEval/{i}" for i in range(12)]
K = 3
# per model, task -> repeats passed (as_recorded; reasoning_stripped flips item 5 for "distilled")
PASSES = {
    "distilled": [3, 3, 2, 0, 1, 3, 0, 3, 2, 0, 3, 1],
    "base": [3, 0, 3, 0, 3, 0, 1, 3, 0, 0, 2, 3],
    "distilled2": [0, 3, 3, 3, 0, 0, 3, 2, 1, 0, 3, 0],
}


def _write_model(run: Path, model: str) -> None:
    bdir = run / "raw" / model / "humaneval_plus"
    bdir.mkdir(parents=True)
    gens, proxy = [], []
    for t, tid in enumerate(TASKS):
        for rep in range(K):
            injected = t == 0
            prompt = PAYLOADS["prompt"] if injected else f"Write task {t}."
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "seed": 1000 + rep}
            reasoning = PAYLOADS["reasoning"] if injected else f"{model} thinks about task {t} " * (t + 1) * (3 if model == "distilled" else 1)
            answer = (PAYLOADS["answer"] if injected else f"def f_{t}():\n    return {t}  # {model} repeat {rep}")
            content = f"<think>{reasoning}</think>{answer}"
            common = {"request_hash": request_hash(body), "content": content, "reasoning": reasoning, "answer": answer,
                      "think_closed": True, "finish_reason": "length" if (t == 3 and model == "base") else "stop",
                      "usage": {"prompt_tokens": 20 + t, "completion_tokens": 100 + t + rep}, "latency_s": 1.5 + rep}
            gens.append({"schema_version": 1, "ts": "2026-01-01T00:00:00Z", "model": model, "task_id": tid, "repeat": rep,
                         "seed": 1000 + rep, "error": None, **common})
            proxy.append({"schema_version": 1, "id": f"{model}-{t}-{rep}", "ts_start": "2026-01-01T00:00:00Z",
                          "ts_end": "2026-01-01T00:00:02Z", "model": model, "benchmark": "humaneval_plus",
                          "path": "/v1/chat/completions", "status": 200, "request": body, "cache_hit": False,
                          "error": None, **common})
    (bdir / "generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gens))
    (run / "proxy").mkdir(exist_ok=True)
    (run / "proxy" / f"{model}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in proxy))
    for proto in ("as_recorded", "reasoning_stripped"):
        ev = {}
        for t, tid in enumerate(TASKS):
            c = PASSES[model][t]
            if proto == "reasoning_stripped" and model == "distilled" and t == 5:
                c = 0
            ev[tid] = [{"base_status": "pass" if r < c else "fail", "plus_status": "pass" if r < c else "fail"}
                       for r in range(K)]
        (bdir / f"samples_{proto}_eval_results.json").write_text(json.dumps({"eval": ev}))
    (bdir / "done.json").write_text(json.dumps({"schema_version": 1, "benchmark": "humaneval_plus",
                                                "generations": len(TASKS) * K, "errors": 0}))


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    run = tmp_path_factory.mktemp("syn-html") / "run"
    for model in PASSES:
        _write_model(run, model)
    # Two comparisons, as summary.comparisons holds them: analyze each pair, then combine.
    summaries = {}
    for cand in ("distilled2", "distilled"):
        assert main(["analyze", "--run", str(run), "--candidate", cand, "--baseline", "base"]) == 0
        summaries[cand] = json.loads((run / "analysis" / "summary.json").read_text())
    s = summaries["distilled"]
    s["comparisons"] = [{"candidate": c, "baseline": "base", "benchmarks": summaries[c]["benchmarks"]}
                        for c in ("distilled", "distilled2")]
    (run / "analysis" / "summary.json").write_text(json.dumps(s))
    assert main(["report", "--run", str(run)]) == 0
    return run, s


def test_majority_vote():
    from harness.report.html import majority

    assert majority([True, True, False]) is True
    assert majority([True, False]) is False  # a tie is not a majority
    assert majority([True, None, None]) is True  # unscored repeats do not vote
    assert majority([None]) is None


def test_synthetic_report_in_browser(driver, synthetic_report):
    run, s = synthetic_report
    page = run / "report.html"
    open_page(driver, page)
    assert driver.execute_script("return window.__pwned") is None
    from selenium.webdriver.support.ui import Select

    comparison = Select(driver.find_element("css selector", "[data-filter-comparison]"))
    # Outcomes are majority votes over the k = 3 repeats: recompute them from the fixture's pass counts.
    for comp in s["comparisons"]:
        c, b = comp["candidate"], comp["baseline"]
        blk = comp["benchmarks"]["humaneval_plus"]
        assert blk["protocol"] == "reasoning_stripped"  # a harness run: the primary protocol
        majority, first = {o: 0 for o in OUTCOMES}, {o: 0 for o in OUTCOMES}
        for t in range(len(TASKS)):
            pc = 0 if (c == "distilled" and t == 5) else PASSES[c][t]
            for cells, (vc, vb) in ((majority, (pc * 2 > K, PASSES[b][t] * 2 > K)), (first, (pc > 0, PASSES[b][t] > 0))):
                cells["both" if vc and vb else "only_candidate" if vc else "only_baseline" if vb else "neither"] += 1
        assert majority != first  # the fixture tells the two rules apart
        # summary.json pairs on the majority vote (issue 11) or, before that, on the first repeat
        assert {o: blk["paired"][o] for o in OUTCOMES} in (majority, first)
        comparison.select_by_visible_text(f"{c} vs {b}")
        check_filters(driver, {"humaneval_plus": {"paired": majority, "n": len(TASKS)}})
    comparison.select_by_visible_text("distilled vs base")
    # Truncation: only the baseline's HumanEval/3 stopped at the token limit (finish_reason "length").
    truncation = Select(driver.find_element("css selector", "[data-filter-truncation]"))
    truncation.select_by_value("baseline")
    assert [r[0] for r in visible_rows(driver)] == ["humaneval_plus:HumanEval/3"]
    truncation.select_by_value("candidate")
    assert visible_rows(driver) == []
    truncation.select_by_value("")
    # Sort by reasoning-length difference: the fixture's candidate reasons 3x as long, growing with the task number.
    Select(driver.find_element("css selector", "[data-sort]")).select_by_value("delta_desc")
    assert [r[0] for r in visible_rows(driver)][:2] == ["humaneval_plus:HumanEval/11", "humaneval_plus:HumanEval/10"]
    # Category: every visible row carries the chosen label (taxonomy labels of the HumanEval prompts).
    category = Select(driver.find_element("css selector", "[data-filter-category]"))
    label = category.options[1].get_attribute("value")
    category.select_by_value(label)
    cats = driver.execute_script("return Array.from(document.querySelectorAll('[data-sample]')).filter(r => "
                                 "r.offsetParent !== null).map(r => r.querySelector('td:nth-child(3)').textContent)")
    assert cats and all(label in c.split(", ") for c in cats)
    category.select_by_value("")
    # Text search finds the injected prompt; the row and its detail show the payloads as characters.
    search = driver.find_element("css selector", "[data-filter-search]")
    search.send_keys("onerror")
    assert [r[0] for r in visible_rows(driver)] == ["humaneval_plus:HumanEval/0"]
    open_row(driver, "humaneval_plus:HumanEval/0")
    detail = driver.find_element("css selector", "[data-detail]")
    assert driver.execute_script("return document.querySelector('[data-detail] pre.prompt').textContent") == PAYLOADS["prompt"]
    for model in ("distilled", "base"):
        assert model_text(driver, model, "pre.answer") == PAYLOADS["answer"]
        assert open_reasoning(driver, model) == PAYLOADS["reasoning"]
        # the repeats grid: one cell per repeat under each protocol, and the proxy metadata
        assert len(driver.find_elements("css selector", f'[data-detail] [data-model="{model}"] .grid tr:first-child .cell')) == K
        text = model_text(driver, model, "dl.meta")
        assert _hash_for(model) in text and "stop" in text and "1.50 s" in text
    assert detail.find_elements("css selector", "img, script, svg, iframe") == []
    assert driver.execute_script("return window.__pwned") is None
    assert console_errors(driver) == []


def _hash_for(model: str) -> str:
    return request_hash({"model": model, "messages": [{"role": "user", "content": PAYLOADS["prompt"]}], "seed": 1000})


def test_report_without_samples_file_still_writes_tables(synthetic_report, tmp_path):
    run, _ = synthetic_report
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "analysis" / "samples.jsonl").unlink()
    assert main(["report", "--run", str(copy)]) == 0
    text = (copy / "report.html").read_text()
    assert "samples.jsonl not found" in text and "<table>" in text


def test_bad_samples_file_names_the_field(synthetic_report, tmp_path, capsys):
    run, _ = synthetic_report
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = copy / "analysis" / "samples.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    del rec["answer"]
    lines[1] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    assert main(["report", "--run", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "samples.jsonl:2" in err and "'answer'" in err


def test_samples_export_joins_proxy_records(tmp_path):
    """A harness-run lm-eval sample takes its texts and metadata from the proxy record with the same
    (messages, seed); a sample without one keeps its own text and says so in `source`."""
    run = tmp_path / "run"
    docs = [json.loads(ln) for ln in (REPO / "tests/fixtures/data/aime24.jsonl").read_text().splitlines() if ln.strip()][:2]
    proxy = []
    for model, seed in (("cand", 1), ("base", 2)):
        bdir = run / "raw" / model / "aime24"
        bdir.mkdir(parents=True)
        lines = []
        for i, doc in enumerate(docs):
            msgs = [{"role": "user", "content": f"Question: {doc.get('Problem', doc.get('problem'))}\nAnswer:"}]
            for filt in ("as_recorded", "reasoning_stripped"):
                lines.append(json.dumps({"doc_id": i, "doc": doc, "target": "0", "filter": filt, "resps": [["sample text"]],
                                         "filtered_resps": ["sample text"], "exact_match": int(i == 0),
                                         "arguments": {"gen_args_0": {"arg_0": [json.dumps(msgs)], "arg_1": {}}}}))
            if model == "cand" and i == 0:
                body = {"messages": msgs, "seed": seed, "model": model}
                proxy.append({"schema_version": 1, "model": model, "benchmark": "aime24", "status": 200, "request": body,
                              "request_hash": request_hash(body), "content": "A", "reasoning": "server-side reasoning",
                              "answer": "A", "think_closed": True, "finish_reason": "stop", "latency_s": 2.5,
                              "usage": {"prompt_tokens": 30, "completion_tokens": 50}, "cache_hit": True, "error": None})
        (bdir / "samples_aime24_2026-01-01T00-00-00.000000.jsonl").write_text("\n".join(lines) + "\n")
        (bdir / "results_2026-01-01T00-00-00.000000.json").write_text(
            json.dumps({"results": {"aime24": {}}, "config": {"model_args": {"seed": seed}}}))
        (bdir / "done.json").write_text("{}")
    (run / "proxy").mkdir()
    (run / "proxy" / "cand.jsonl").write_text("".join(json.dumps(p) + "\n" for p in proxy))
    assert main(["analyze", "--run", str(run), "--candidate", "cand", "--baseline", "base"]) == 0
    recs = {(r["model"], r["item"]): r for r in map(json.loads, (run / "analysis" / "samples.jsonl").open())}
    assert len(recs) == 4
    item0, item1 = (str(d.get("ID", i)) for i, d in enumerate(docs))
    joined = recs[("cand", item0)]
    assert (joined["source"], joined["reasoning"], joined["answer"]) == ("proxy", "server-side reasoning", "A")
    assert joined["request_hash"] == proxy[0]["request_hash"] and joined["cache_hit"] is True
    assert (joined["finish_reason"], joined["latency_s"], joined["prompt_tokens"], joined["completion_tokens"]) == ("stop", 2.5, 30, 50)
    assert joined["scores"] == {"as_recorded": True, "reasoning_stripped": True}
    assert joined["gold"] == str(next(v for k, v in docs[0].items() if k.lower() == "answer"))
    alone = recs[("cand", item1)]
    assert (alone["source"], alone["answer"], alone["request_hash"]) == ("sample", "sample text", None)
    assert alone["scores"] == {"as_recorded": False, "reasoning_stripped": False}
