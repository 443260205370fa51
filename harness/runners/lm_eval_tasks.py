"""Functions our generated lm-eval task YAMLs reference via `!function utils.<name>`.

Each generated task folder gets a one-line `utils.py` that star-imports this module, so the
scorers are lm-eval's own (re-exported, not re-implemented) and the reasoning filter is the
harness's single rule (harness.reasoning).
"""

from __future__ import annotations

from typing import Any

# lm-eval's own scorers, so `as_recorded` equals what lm-eval's built-in tasks would record.
from lm_eval.tasks.aime.utils import process_results as aime_process_results  # noqa: F401

from harness.reasoning import strip_reasoning


def strip_think(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    """`reasoning_stripped` filter: text after the last </think>; an unclosed <think> is no answer."""
    return [[strip_reasoning(r) for r in rs] for rs in resps]


def _seed_langdetect() -> None:
    # IFEval's language checks use langdetect, which is random unless seeded (notes/lm-eval.md §3).
    try:
        from langdetect import DetectorFactory
    except ImportError:
        return
    DetectorFactory.seed = 0


def ifeval_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    from lm_eval.tasks.ifeval.utils import process_results

    _seed_langdetect()
    return process_results(doc, results)


def agg_inst_level_acc(items: list[list[bool]]) -> float:
    from lm_eval.tasks.ifeval.utils import agg_inst_level_acc as agg

    return float(agg(items))
