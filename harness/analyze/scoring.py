"""Re-scoring with lm-eval's own scorers (each benchmark's registry `process_results`; IFEval's checks).

Imported lm-eval files only hold what the tool scored (filter `none`: the raw text, reasoning
included). To put them on the `reasoning_stripped` protocol we apply the very same scorer
functions lm-eval used to `strip_reasoning(raw response)`; nothing is re-implemented here (for
IFEval only the strict half of `process_results` runs: see `score_ifeval`).
IFEval's sentence-splitter data comes from harness.nltk_data (what was used is recorded).

`score_many` spreads a batch of re-scores over processes (not threads: some lm-eval scorers use
`signal.alarm`, which only works in a process's main thread). Every IFEval score seeds `random` and
langdetect from the document key and variant, so a score does not depend on which process computes
it or in which order: parallel results equal serial ones. Three more savings leave every score as it
was, each explained where it is made: only IFEval's strict check runs (`score_ifeval`), langdetect
extracts a text's n-grams once for all its seeded draws (`_memoize_langdetect_ngrams`), and nltk
is imported without its scikit-learn wrapper (`_import_nltk_lean`).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from harness import nltk_data
from harness.benchmarks import resolve, spec

log = logging.getLogger(__name__)


def _import_nltk_lean() -> None:
    """Import nltk without its optional scikit-learn wrapper: about a second less per analysis.

    `import nltk` imports everything nltk has, including `nltk.classify.scikitlearn`, which imports
    scikit-learn (and through it pandas) inside a try/except ImportError. Neither the sentence-data
    lookup nor lm-eval's IFEval checkers use that wrapper, so scikit-learn is hidden (a None entry
    in sys.modules makes its import fail) while nltk is imported, then unhidden: a later
    `import sklearn` in this process works as usual. Nothing is done when either is imported already.
    """
    if "nltk" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import nltk  # noqa: F401
    finally:
        if sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]


def ensure_sentence_data() -> dict[str, Any]:
    """harness.nltk_data.ensure_sentence_data, with nltk imported lean (see `_import_nltk_lean`)."""
    _import_nltk_lean()
    return nltk_data.ensure_sentence_data()


@lru_cache(maxsize=1)
def _ifeval_process_results():
    ensure_sentence_data()
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0  # langdetect is random unless seeded: reproducible language checks
    _memoize_langdetect_ngrams()
    from lm_eval.tasks.ifeval.utils import process_results

    return process_results


def _memoize_langdetect_ngrams(size: int = 8) -> None:
    """Let langdetect extract a text's n-grams once for all the seeded draws scored on that text.

    `Detector._extract_ngrams` is a pure function of the cleaned text (and the fixed profiles); it
    is about a third of a `detect` call, and each random-dependent IFEval text is detected under
    eight seeds (variants). The memo returns a fresh copy, so detection is unchanged; the seeded
    random walk over the n-grams, which the variants differ in, still runs every time. Skipped when
    a langdetect release lacks the method (slower, same results).
    """
    from langdetect.detector import Detector

    original = getattr(Detector, "_extract_ngrams", None)
    if original is None or getattr(original, "_harness_memo", False):
        return
    memo: dict[tuple[int, str], list[str]] = {}

    def extract_ngrams(self: Any) -> list[str]:
        key = (id(self.word_lang_prob_map), self.text)
        if key not in memo:
            if len(memo) >= size:
                memo.pop(next(iter(memo)))
            memo[key] = original(self)
        return list(memo[key])

    extract_ngrams._harness_memo = True  # type: ignore[attr-defined]
    extract_ngrams._harness_original = original  # type: ignore[attr-defined]  # tests compare with it
    Detector._extract_ngrams = extract_ngrams  # type: ignore[method-assign,unused-ignore]


@cache
def _process_results(bench: str) -> Any:
    """The benchmark's registry `lm_eval.process_results` (the function its generated task calls)."""
    task = spec(bench).lm_eval
    if task is None:
        raise ValueError(f"no lm-eval scorer for benchmark {bench!r}")
    return resolve(task.process_results)


def score_text(bench: str, doc: dict[str, Any], text: str) -> dict[str, Any]:
    """lm-eval's per-doc metrics for `text` (the scored response) on `doc`."""
    if spec(bench).per_instruction:
        return dict(_ifeval_process_results()(doc, [text]))
    return dict(_process_results(bench)(doc, [text]))


# IFEval's checkers are not deterministic: a checker whose kwargs are missing or invalid (e.g.
# keywords:letter_frequency with letter '#') draws its parameter from the global `random`, and
# langdetect (response_language, english_capital/lowercase) is unseeded. We seed both per document,
# so a re-score never depends on order or process, and measure which documents the draw affects.
LANGDETECT_INSTRUCTIONS = ("language:response_language", "change_case:english_capital",
                           "change_case:english_lowercase")


def _seed_for(doc: dict[str, Any], variant: int = 0) -> str:
    return f"ifeval:{doc.get('key')}:{variant}"


@lru_cache(maxsize=1)
def _ifeval_strict():
    _ifeval_process_results()  # sentence data first, langdetect seeded
    from lm_eval.tasks.ifeval.utils import InputExample, test_instruction_following_strict

    return InputExample, test_instruction_following_strict


def score_ifeval(doc: dict[str, Any], text: str, variant: int = 0) -> dict[str, Any]:
    """IFEval's strict metrics with `random` and langdetect seeded from the document key (and a variant).

    lm-eval's `process_results` runs the strict check and then the loose one (eight edited copies of
    the response): the loose metrics are not analysed, so only lm-eval's strict check runs here,
    built exactly as `process_results` builds it. The strict check comes first there, so it sees the
    same random draws either way.
    """
    import random

    input_example, strict = _ifeval_strict()
    from langdetect import DetectorFactory

    state = random.getstate()
    try:
        DetectorFactory.seed = variant
        random.seed(_seed_for(doc, variant))
        inp = input_example(key=doc["key"], instruction_id_list=doc["instruction_id_list"], prompt=doc["prompt"],
                            kwargs=doc["kwargs"])
        out = strict(inp, text)
        return {"prompt_level_strict_acc": out.follow_all_instructions,
                "inst_level_strict_acc": out.follow_instruction_list}
    finally:
        DetectorFactory.seed = 0
        random.setstate(state)


def random_dependent(doc: dict[str, Any]) -> bool:
    """Whether lm-eval's IFEval score of `doc` can depend on random draws (see above)."""
    import random

    _ifeval_process_results()
    from lm_eval.tasks.ifeval import instructions_registry

    ids = list(doc.get("instruction_id_list") or [])
    if any(i in LANGDETECT_INSTRUCTIONS for i in ids):
        return True
    state = random.getstate()
    try:
        for idx, iid in enumerate(ids):
            kw = {k: v for k, v in (doc["kwargs"][idx] or {}).items() if v}
            drawn = []
            for s in (1, 2, 3):
                random.seed(s)
                inst = instructions_registry.INSTRUCTION_DICT[iid](iid)
                inst.build_description(**kw)
                args = inst.get_instruction_args()
                if args and "prompt" in args:
                    inst.build_description(prompt=doc.get("prompt"))
                drawn.append(repr(inst.get_instruction_args()))
            if len(set(drawn)) > 1:
                return True
    finally:
        random.setstate(state)
    return False


# --- batches over processes, and the version that keys the re-score cache ---

Job = tuple[str, dict[str, Any], str, int]  # benchmark, lm-eval doc, text to score, seed variant (IFEval)
MIN_PARALLEL_JOBS = 24  # below this a pool's start-up costs more than it saves


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


@cache
def scorer_version(bench: str) -> str:
    """What a re-score of `bench` depends on besides doc and text, hashed: a change means a cache miss.

    lm-eval's version (its scorer), this file's source (seeding, variants, what is kept), and for IFEval
    langdetect's and nltk's versions and the sentence-splitter data that ensure_sentence_data found.
    """
    parts = [f"bench={bench}", f"lm_eval={_version('lm_eval')}",
             "scoring=" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()]
    task = spec(bench).lm_eval
    if task is not None and not spec(bench).per_instruction:
        parts.append(f"process_results={task.process_results}")
    if spec(bench).per_instruction:
        sd = ensure_sentence_data()
        parts += [f"langdetect={_version('langdetect')}", f"nltk={_version('nltk')}",
                  f"sentence_data={sd.get('source')}:{sd.get('sha256', '')}"]
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:32]


def kept_result(bench: str, res: dict[str, Any]) -> dict[str, Any]:
    """The per-doc metrics analysis reads, as plain JSON values (what the cache stores)."""
    if spec(bench).per_instruction:
        return {"prompt_level_strict_acc": bool(res["prompt_level_strict_acc"]),
                "inst_level_strict_acc": [bool(x) for x in res["inst_level_strict_acc"]]}
    metric = spec(bench).metric_field
    return {metric: bool(res[metric])}


def score_job(job: Job) -> dict[str, Any]:
    bench, doc, text, variant = job
    res = score_ifeval(doc, text, variant) if spec(bench).per_instruction else score_text(bench, doc, text)
    return kept_result(bench, res)


def _score_chunk(jobs: list[Job]) -> list[dict[str, Any]]:
    return [score_job(j) for j in jobs]


def _warm(benches: set[str]) -> None:
    """Import the scorers (and load langdetect's profiles) once, before workers start or fork."""
    for bench in benches:
        if spec(bench).per_instruction:
            _ifeval_process_results()
            from langdetect.detector_factory import init_factory

            init_factory()
        else:
            _process_results(bench)


def default_workers() -> int:
    """HARNESS_ANALYZE_WORKERS, else the CPUs this process may run on."""
    env = os.environ.get("HARNESS_ANALYZE_WORKERS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            from harness.cli import UsageError

            raise UsageError(f"HARNESS_ANALYZE_WORKERS={env!r}: expected a whole number of processes") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def score_many(jobs: list[Job], workers: int | None = None) -> list[dict[str, Any]]:
    """`score_job` for every job, in order; over `workers` processes when the batch is big enough."""
    workers = default_workers() if workers is None else max(1, workers)
    workers = min(workers, len(jobs) // (MIN_PARALLEL_JOBS // 2) or 1)
    _warm({j[0] for j in jobs})
    if workers <= 1 or len(jobs) < MIN_PARALLEL_JOBS:
        return _score_chunk(jobs)
    # Jobs on the same text (a document's seeded variants) stay together, so langdetect's n-gram memo
    # serves them; groups go longest-text-first to the least loaded of several chunks per worker, and
    # idle workers take the next chunk (a text's cost depends on which checkers run, not only length).
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (bench, _, text, _) in enumerate(jobs):
        groups.setdefault((bench, text), []).append(i)
    n_chunks = workers * 8
    chunks: list[list[int]] = [[] for _ in range(n_chunks)]
    load = [0] * n_chunks
    for (_, text), idxs in sorted(groups.items(), key=lambda g: -(len(g[0][1]) + 200) * len(g[1])):
        c = load.index(min(load))
        chunks[c] += idxs
        load[c] += (len(text) + 200) * len(idxs)
    chunks = [c for c in chunks if c]
    # fork shares the warmed-up scorers for free; with other threads running (a fork would copy locks
    # they hold) spawn instead: each worker imports the scorers fresh (slower start, same results).
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    out: list[dict[str, Any] | None] = [None] * len(jobs)
    log.debug("re-scoring %d texts over %d %s processes", len(jobs), workers, method)
    # Frozen objects are skipped by the garbage collector: forked workers then neither spend time
    # traversing the parent's heap (loaded samples, imported modules) nor copy its pages by doing so.
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            batches = pool.map(_score_chunk, [[jobs[i] for i in c] for c in chunks])
            for idxs, results in zip(chunks, batches, strict=True):
                for i, r in zip(idxs, results, strict=True):
                    out[i] = r
    except (OSError, BrokenProcessPool) as exc:  # no processes to be had (limits, a killed worker): serial
        log.warning("re-scoring over processes failed (%s); scoring in this process", exc)
        return _score_chunk(jobs)
    finally:
        gc.unfreeze()
    done = [r for r in out if r is not None]
    if len(done) != len(jobs):
        raise RuntimeError(f"re-scoring returned {len(done)} of {len(jobs)} results")
    return done
