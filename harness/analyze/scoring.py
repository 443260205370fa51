"""Re-scoring with lm-eval's own scorers (AIME exact_match, IFEval instruction checks).

Imported lm-eval files only hold what the tool scored (filter `none`: the raw text, reasoning
included). To put them on the `reasoning_stripped` protocol we apply the very same scorer
functions lm-eval used to `strip_reasoning(raw response)`; nothing is re-implemented here.
IFEval's sentence-splitter data comes from harness.nltk_data (what was used is recorded).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from harness.nltk_data import ensure_sentence_data


@lru_cache(maxsize=1)
def _ifeval_process_results():
    ensure_sentence_data()
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0  # langdetect is random unless seeded: reproducible language checks
    from lm_eval.tasks.ifeval.utils import process_results

    return process_results


@lru_cache(maxsize=1)
def _aime_process_results():
    from lm_eval.tasks.aime.utils import process_results

    return process_results


def score_text(bench: str, doc: dict[str, Any], text: str) -> dict[str, Any]:
    """lm-eval's per-doc metrics for `text` (the scored response) on `doc`."""
    if bench in ("aime24", "aime25"):
        return dict(_aime_process_results()(doc, [text]))
    if bench == "ifeval":
        return dict(_ifeval_process_results()(doc, [text]))
    raise ValueError(f"no lm-eval scorer for benchmark {bench!r}")


# IFEval's checkers are not deterministic: a checker whose kwargs are missing or invalid (e.g.
# keywords:letter_frequency with letter '#') draws its parameter from the global `random`, and
# langdetect (response_language, english_capital/lowercase) is unseeded. We seed both per document,
# so a re-score never depends on order or process, and measure which documents the draw affects.
LANGDETECT_INSTRUCTIONS = ("language:response_language", "change_case:english_capital",
                           "change_case:english_lowercase")


def _seed_for(doc: dict[str, Any], variant: int = 0) -> str:
    return f"ifeval:{doc.get('key')}:{variant}"


def score_ifeval(doc: dict[str, Any], text: str, variant: int = 0) -> dict[str, Any]:
    """IFEval metrics with `random` and langdetect seeded from the document key (and a variant)."""
    import random

    process = _ifeval_process_results()
    from langdetect import DetectorFactory

    state = random.getstate()
    try:
        DetectorFactory.seed = variant
        random.seed(_seed_for(doc, variant))
        return dict(process(doc, [text]))
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


def score_lm_eval(bench: str, doc: dict[str, Any], text: str) -> dict[str, Any]:
    """Deterministic per-doc metrics with lm-eval's scorer for `bench`."""
    if bench == "ifeval":
        return score_ifeval(doc, text)
    return score_text(bench, doc, text)
