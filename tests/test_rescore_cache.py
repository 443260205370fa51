"""Re-scoring imported lm-eval samples fast and unchanged (issue 15 item 4).

Real data and real scorers: subsets of the reference study's IFEval samples (base: reasoning in the
text, so it is re-scored; distilled: no reasoning, so lm-eval's recorded metric is reused), lm-eval's
IFEval checkers, the run's re-score cache on disk, worker processes.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.analyze import load, scoring
from harness.analyze.rescore_cache import CACHE_FILE, RescoreCache
from harness.cli import main
from harness.lm_eval_files import as_obj
from harness.reasoning import strip_reasoning

REF = Path(__file__).resolve().parents[1] / "reference" / "lm-eval-outputs"
SUBSET = 40  # first documents of each file: 9 of them have langdetect checkers (random-dependent)
FILES = {  # model: (samples, results)
    "base": ("samples_ifeval_2026-02-21T21-45-55.981090.jsonl", "qwen3-14b-ifeval_2026-02-21T21-45-55.981090.json"),
    "distilled": ("samples_ifeval_2026-02-21T18-52-43.750841.jsonl", "ifeval_2026-02-21T18-52-43.750841.json"),
}


def _lines(name: str) -> list[str]:
    return gzip.decompress((REF / f"{name}.gz").read_bytes()).decode("utf-8").splitlines()[:SUBSET]


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    src = tmp_path / "src"
    src.mkdir()
    for model, (samples, _results) in FILES.items():
        # A subset of the documents: lm-eval's results file counts all 541, so it would not pair (import
        # refuses it); the per-sample metrics are all re-scoring needs.
        (src / samples).write_text("\n".join(_lines(samples)) + "\n", encoding="utf-8")
        assert main(["import", "--run", str(run), "--model", model, "--benchmark", "ifeval", str(src / samples)]) == 0
    return run


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> list[list[scoring.Job]]:
    """Every batch handed to lm-eval's scorers."""
    calls: list[list[scoring.Job]] = []
    real = scoring.score_many

    def spying(jobs: list[scoring.Job], workers: int | None = None) -> list[dict[str, Any]]:
        calls.append(list(jobs))
        return real(jobs, workers)

    monkeypatch.setattr(scoring, "score_many", spying)
    return calls


def _rescored(rd: load.RunData) -> dict[str, Any]:
    out = {}
    for (model, bench), bd in rd.benches.items():
        out[f"{model}/{bench}"] = {"outcomes": bd.outcomes["reasoning_stripped"], "inst": bd.inst["reasoning_stripped"],
                                   "rescored": bd.rescored, "flags": bd.scored_text_flags["reasoning_stripped"]}
    return out


def test_rerun_uses_cache_and_a_changed_text_is_rescored(run: Path, spy: list[list[scoring.Job]]) -> None:
    cold = load.load_run(run)
    assert len(spy) == 1 and (run / "analysis" / CACHE_FILE).is_file()  # one batch for the whole run
    # distilled texts carry no reasoning: only its random-dependent documents reach the scorer, and
    # of those only texts base did not already have (both answered '' to some prompts: one score)
    stripped = {m: {str(as_obj(r["doc"])["key"]): strip_reasoning(as_obj(r["resps"])[0][0])
                    for r in map(json.loads, _lines(FILES[m][0]))} for m in FILES}
    dependent = {str(as_obj(json.loads(line)["doc"])["key"]) for line in _lines(FILES["distilled"][0])
                 if scoring.random_dependent(as_obj(json.loads(line)["doc"]))}
    expected = {k for k in dependent if stripped["distilled"][k] != stripped["base"][k]}
    dist_scored = {str(j[1]["key"]) for j in spy[0] if j[2] == stripped["distilled"][str(j[1]["key"])]
                   and j[2] != stripped["base"][str(j[1]["key"])]}
    assert dist_scored == expected and 0 < len(expected) < SUBSET
    assert len(spy[0]) == len({(j[1]["key"], j[2], j[3]) for j in spy[0]})  # nothing scored twice
    assert all(cold.benches[("base", "ifeval")].rescored["range_over_random_draws"])

    spy.clear()
    with pytest.MonkeyPatch.context() as mp:  # a warm run needs neither the scorers nor lm-eval's registry
        mp.setattr(scoring, "random_dependent", lambda doc: pytest.fail("random_dependent called on a warm run"))
        warm = load.load_run(run)
    assert spy == []  # everything came from the cache or the recorded metrics
    assert _rescored(warm) == _rescored(cold)

    # Change one base answer (after </think>) of a document whose score cannot depend on random draws.
    path = next((run / "raw" / "base" / "ifeval").glob("samples_*.jsonl"))
    lines = path.read_text(encoding="utf-8").splitlines()
    i = next(n for n, line in enumerate(lines) if "</think>" in as_obj(json.loads(line)["resps"])[0][0]
             and not scoring.random_dependent(as_obj(json.loads(line)["doc"])))
    rec = json.loads(lines[i])
    doc, raw = as_obj(rec["doc"]), as_obj(rec["resps"])[0][0]
    new_text = raw + "\n\nP.S. THIS LINE WAS ADDED BY THE TEST, IN CAPITALS."
    rec["resps"] = repr([[new_text]])
    lines[i] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spy.clear()
    changed = load.load_run(run)
    scored_now = [[(j[1]["key"], j[2], j[3]) for j in batch] for batch in spy]
    assert scored_now == [[(doc["key"], strip_reasoning(new_text), 0)]]
    item = str(doc["key"])
    expect = scoring.score_job(("ifeval", doc, strip_reasoning(new_text), 0))
    bd = changed.benches[("base", "ifeval")]
    assert bd.outcomes["reasoning_stripped"][0][item] == expect["prompt_level_strict_acc"]
    assert bd.inst["reasoning_stripped"][0][item] == expect["inst_level_strict_acc"]
    before, after = _rescored(cold), _rescored(changed)
    for part in ("outcomes", "inst"):
        del before["base/ifeval"][part][0][item], after["base/ifeval"][part][0][item]
    assert after == before


def test_recorded_metric_is_what_the_scorer_gives() -> None:
    """The shortcut's premise: where the text is unchanged and no draw is involved, lm-eval's recorded
    metric equals a re-score with the installed scorer (same lm-eval code, same sentence data)."""
    checked = 0
    for line in _lines(FILES["distilled"][0]):
        rec = json.loads(line)
        doc, text = as_obj(rec["doc"]), as_obj(rec["filtered_resps"])[0]
        if strip_reasoning(text) != text or scoring.random_dependent(doc):
            continue
        recorded = load._recorded_result("ifeval", rec)
        assert scoring.score_job(("ifeval", doc, text, 0)) == recorded, doc["key"]
        checked += 1
    assert checked >= 25


def _base_jobs() -> list[scoring.Job]:
    jobs: list[scoring.Job] = []
    for line in _lines(FILES["base"][0]):
        rec = json.loads(line)
        doc = as_obj(rec["doc"])
        text = strip_reasoning(as_obj(rec["resps"])[0][0])
        jobs += [("ifeval", doc, text, v) for v in ((0, 1, 2, 3) if scoring.random_dependent(doc) else (0,))]
    return jobs


def test_processes_give_the_serial_results() -> None:
    jobs = _base_jobs()
    assert len(jobs) >= scoring.MIN_PARALLEL_JOBS
    assert scoring.score_many(jobs, workers=2) == scoring.score_many(jobs, workers=1)


def test_no_processes_means_serial_scoring(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("Resource temporarily unavailable")

    jobs = _base_jobs()[: scoring.MIN_PARALLEL_JOBS]
    serial = scoring.score_many(jobs, workers=1)
    monkeypatch.setattr(scoring, "ProcessPoolExecutor", refuse)
    assert scoring.score_many(jobs, workers=2) == serial
    assert "scoring in this process" in caplog.text


def test_workers_are_spawned_while_other_threads_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork would copy locks other threads hold: with a thread alive, workers start fresh (spawn)."""
    methods: list[str] = []
    real = multiprocessing.get_context
    monkeypatch.setattr(scoring.multiprocessing, "get_context", lambda m=None: methods.append(m) or real(m))
    jobs = _base_jobs()[: scoring.MIN_PARALLEL_JOBS]
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        got = scoring.score_many(jobs, workers=2)
    finally:
        stop.set()
        thread.join()
    assert methods == ["spawn"]
    assert got == scoring.score_many(jobs, workers=1)


def test_langdetect_ngram_memo_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from langdetect.detector import Detector

    jobs = [j for j in _base_jobs() if any("case" in i or "language" in i for i in j[1]["instruction_id_list"])]
    memoized = scoring.score_many(jobs, workers=1)
    assert Detector._extract_ngrams._harness_memo
    monkeypatch.setattr(Detector, "_extract_ngrams", Detector._extract_ngrams._harness_original)
    assert scoring.score_many(jobs, workers=1) == memoized


def test_nltk_is_imported_without_sklearn_and_sklearn_still_imports() -> None:
    """The lean nltk import hides scikit-learn only while nltk imports (fresh interpreter)."""
    code = ("import sys\n"
            "from harness.analyze import scoring\n"
            "info = scoring.ensure_sentence_data()\n"
            "assert 'nltk' in sys.modules and 'sklearn' not in sys.modules, sorted(sys.modules)[:5]\n"
            "from sklearn.preprocessing import LabelEncoder\n"
            "print(info['source'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()


def _key(i: int, version: str = "v1") -> tuple[str, str, str, str, str, int]:
    return (version, "ifeval", str(1000 + i), "d" * 64, "t" * 64, 0)


def _res(i: int) -> dict[str, Any]:
    return {"prompt_level_strict_acc": bool(i % 2), "inst_level_strict_acc": [bool(i % 2), True]}


def test_damaged_cache_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE
    cache = RescoreCache(path)
    for i in range(4):
        cache.put(_key(i), _res(i))
    cache.flush()
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln]
    assert len(lines) == 4
    lines[0] = lines[0].replace('"prompt_level_strict_acc": false', '"prompt_level_strict_acc": true')  # altered value
    lines[1] = lines[1][: len(lines[1]) // 2]  # torn line
    lines[2] = json.dumps({"format": 1, "key": list(_key(2)), "result": "yes"})  # no checksum, bad shape
    path.write_text("\n".join(lines) + "\nnot json\n", encoding="utf-8")
    again = RescoreCache(path)
    assert again.entries == {_key(3): _res(3)}
    assert again.ignored == 4
    for i in range(3):  # re-scored entries are appended and read back
        again.put(_key(i), _res(i))
    again.flush()
    assert RescoreCache(path).entries == {_key(i): _res(i) for i in range(4)}
    with pytest.raises(ValueError, match="not cacheable"):
        again.put(_key(9), {"prompt_level_strict_acc": "maybe"})


def _writer(path: str, start: int, barrier: Any) -> None:
    cache = RescoreCache(Path(path))
    for i in range(start, start + 300):
        cache.put(_key(i), _res(i))
    barrier.wait()
    cache.flush()


def test_concurrent_writers_and_compaction_keep_every_entry(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE
    old = RescoreCache(path)
    for i in range(1200):  # entries of an older scorer version: dead weight to a v1 analysis
        old.put(_key(i, "old"), _res(i))
    old.flush()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_writer, args=(str(path), s, barrier)) for s in (0, 300, 600)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    cache = RescoreCache(path)
    assert cache.ignored == 0
    assert {k for k in cache.entries if k[0] == "v1"} == {_key(i) for i in range(900)}
    # Most lines are now another version's: the next flush compacts the file to the live (v1) entries.
    cache.put(_key(5000), _res(0))
    cache.flush()
    reread = RescoreCache(path)
    assert reread.entries == {_key(i): _res(i) for i in range(900)} | {_key(5000): _res(0)}
    assert reread.lines == 901
