"""Functions the registry specs name for our generated lm-eval tasks (`module:function`), and the
reasoning filter every task uses.

Each generated task folder gets a `utils.py` importing the functions its spec names
(harness.runners.lm_eval_runner.task_utils), so a YAML's `!function utils.<alias>` finds them.
Scoring is lm-eval's own wherever lm-eval has it (called, not re-implemented); the reasoning filter
is the harness's single rule (harness.reasoning).
"""

from __future__ import annotations

import functools
import hashlib
import random
from typing import TYPE_CHECKING, Any

from harness.reasoning import strip_reasoning

if TYPE_CHECKING:
    import datasets


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


# --- MATH-500 (HuggingFaceH4/MATH-500) -----------------------------------------------------------
# lm-eval 0.4.13 has no MATH-500 task of its own that we can use zero-shot with \boxed{} answers:
# `minerva_math500` (4-shot "Problem:/Solution:") scores `math_verify` as
#     verify(gold=parse(doc["solution"]), target=parse(candidates))
# (lm_eval/tasks/minerva_math/utils.py, process_results). We make exactly that call, with lm-eval's
# own `parse`/`verify` (math_verify, imported through lm-eval's module so its dependency check runs),
# but the gold is the dataset's `answer` written as the solution ends with it, `$\boxed{answer}$`:
# math_verify only extracts LaTeX inside $...$ or \boxed{}, so a bare answer string would parse to
# nothing, and \boxed{} keeps the boxed-first extraction lm-eval's gold (the solution) goes through.


def math500_gold(doc: dict[str, Any]) -> str:
    """The gold text math_verify parses: the dataset's answer, boxed like the end of its solution."""
    return "$\\boxed{" + str(doc["answer"]) + "}$"


def math500_answer(text: str) -> str | None:
    """maj@k's vote: the last \\boxed{} answer of a text, normalised by lm-eval's minerva normalize_final_answer."""
    from lm_eval.tasks.minerva_math.utils import last_boxed_only_string, normalize_final_answer, remove_boxed

    boxed = last_boxed_only_string(text or "")
    if boxed is None:
        return None
    try:
        return str(normalize_final_answer(remove_boxed(boxed)))
    except (AssertionError, IndexError, ValueError):
        return None


def math500_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """`{"math_verify": 0|1}` for one MATH-500 doc and `[text]` (lm-eval's filtered response).

    Needs `lm-eval[math]` (sympy, math_verify, antlr4-python3-runtime==4.11); imported here, not at
    module import, so the other benchmarks' task folders load without it. math_verify times out
    with SIGALRM: call this from the main thread (a worker thread raises ValueError).
    """
    from lm_eval.tasks.minerva_math.utils import parse, verify

    text = results[0] if results and isinstance(results[0], str) else ""
    return {"math_verify": 1 if verify(gold=parse(math500_gold(doc)), target=parse(text)) else 0}


# --- GPQA Diamond (Idavidrein/gpqa, gpqa_diamond.csv) --------------------------------------------
# lm-eval's `gpqa_diamond_cot_zeroshot` (lm_eval/tasks/gpqa/cot_zeroshot/): same prompt, same
# `flexible-extract` filter and exact_match settings, but the choice order is fixed per item from
# GPQA_CHOICE_SEED and the item's Record ID (lm-eval shuffles with the global `random` state, so the
# order there depends on everything that drew from it before).
GPQA_CHOICE_SEED = 0
# The yaml's `flexible-extract` filter: multi_choice_regex with these arguments, then take_first.
GPQA_FLEXIBLE_EXTRACT: dict[str, Any] = {
    "regex_pattern": r"(\([A-Z]\))", "group_select": -1, "ignore_case": True, "ignore_punctuation": True,
}
# The yaml's metric_list entry for exact_match.
GPQA_EXACT_MATCH_KWARGS: dict[str, Any] = {"ignore_case": True, "ignore_punctuation": True}
_GPQA_FIELDS = ("choice1", "choice2", "choice3", "choice4", "choices", "answer")


def gpqa_choice_key(row: dict[str, Any]) -> str:
    """What an item's choice order is drawn from: its Record ID, else the sha256 of its Question."""
    record_id = row.get("Record ID")
    if isinstance(record_id, str) and record_id.strip():
        return record_id.strip()
    question = row.get("Question")
    return hashlib.sha256((question if isinstance(question, str) else "").encode("utf-8")).hexdigest()


def gpqa_choice_order(row: dict[str, Any], seed: int = GPQA_CHOICE_SEED) -> list[int]:
    """Positions A-D as indices into [Incorrect Answer 1, 2, 3, Correct Answer] (lm-eval's list)."""
    order = [0, 1, 2, 3]
    random.Random(f"{seed}:{gpqa_choice_key(row)}").shuffle(order)  # noqa: S311 (a fixed, recorded order, not a secret)
    return order


def gpqa_doc(row: dict[str, Any], seed: int = GPQA_CHOICE_SEED) -> dict[str, Any]:
    """One raw gpqa_diamond.csv row -> the doc lm-eval's process_docs makes (row + choice1..4, choices,
    answer "(A)".."(D)"), with the choice order from gpqa_choice_order instead of the global random state.

    Choices go through lm-eval's own `preprocess`; like lm-eval, the Question is left as it is.
    """
    from lm_eval.tasks.gpqa.cot_zeroshot.utils import preprocess

    base = [preprocess(row["Incorrect Answer 1"]), preprocess(row["Incorrect Answer 2"]),
            preprocess(row["Incorrect Answer 3"]), preprocess(row["Correct Answer"])]
    order = gpqa_choice_order(row, seed)
    choices = [base[i] for i in order]
    return {
        **row,
        "choice1": choices[0], "choice2": choices[1], "choice3": choices[2], "choice4": choices[3],
        "choices": choices,
        "answer": f"({chr(65 + order.index(3))})",
    }


def gpqa_process_docs(dataset: datasets.Dataset, seed: int = GPQA_CHOICE_SEED) -> datasets.Dataset:
    """`process_docs` for the task YAML: gpqa_doc on every row (the fields lm-eval's process_docs adds).

    `seed` comes from the registry spec (`lm_eval.process_docs_args`), so the run's task files record it."""
    # Never reuse a cached map: the order depends on the seed, which the cache key might miss.
    return dataset.map(lambda row: {k: v for k, v in gpqa_doc(row, seed).items() if k in _GPQA_FIELDS},
                       load_from_cache_file=False)


@functools.lru_cache(maxsize=1)
def _gpqa_flexible_extract() -> Any:
    from lm_eval.filters.extraction import MultiChoiceRegexFilter

    return MultiChoiceRegexFilter(**GPQA_FLEXIBLE_EXTRACT)


def gpqa_extract(docs: list[dict[str, Any]], texts: list[str]) -> list[str]:
    """lm-eval's flexible-extract on each text ("(B)", or "[invalid]"); docs raw or processed.

    One call for many texts: lm-eval's filter rebuilds a Unicode punctuation table on every
    `apply` (~0.2 s), so scoring thousands of samples one by one is slow; batch them here.
    """
    ready = [d if all(k in d for k in ("choices", "answer")) else gpqa_doc(d) for d in docs]
    resps = [[t if isinstance(t, str) else ""] for t in texts]
    return [r[0] for r in _gpqa_flexible_extract().apply(resps, ready)]  # then take_first


def gpqa_process_results_batch(docs: list[dict[str, Any]], texts: list[str]) -> list[dict[str, int]]:
    """gpqa_process_results for many (doc, text) pairs with one filter pass."""
    from lm_eval.api.metrics import exact_match_hf_evaluate

    ready = [d if all(k in d for k in ("choices", "answer")) else gpqa_doc(d) for d in docs]
    out = []
    for doc, pred in zip(ready, gpqa_extract(ready, texts), strict=True):
        score = exact_match_hf_evaluate(predictions=[pred], references=[doc["answer"]], **GPQA_EXACT_MATCH_KWARGS)
        out.append({"exact_match": int(score["exact_match"])})
    return out


def gpqa_answer(text: str) -> str | None:
    """maj@k's vote: the last "(A)".."(D)" of a text (flexible-extract's pattern), upper-cased."""
    import re

    found = re.findall(GPQA_FLEXIBLE_EXTRACT["regex_pattern"], text or "", flags=re.IGNORECASE)
    return found[-1].upper() if found else None


def gpqa_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """`{"exact_match": 0|1}`: lm-eval's flexible-extract on `results[0]`, then lm-eval's exact_match
    (ignore_case, ignore_punctuation) against doc["answer"]. `doc` is a processed doc (or a raw row)."""
    text = results[0] if results else ""
    return gpqa_process_results_batch([doc], [text])[0]
