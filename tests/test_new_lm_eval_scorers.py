"""MATH-500 and GPQA-Diamond scorer pieces in harness/runners/lm_eval_tasks.py (fast; no servers).

The scorers reuse lm-eval's own code: math_verify's parse/verify as lm-eval's minerva_math calls them,
and gpqa cot_zeroshot's preprocess, flexible-extract filter and exact_match settings.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("math_verify", reason="needs lm-eval[math] (sympy, math_verify, antlr4-python3-runtime==4.11)")

from harness.runners import lm_eval_tasks as t  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MATH500 = REPO / "tests/fixtures/data/math500.jsonl"
GPQA = REPO / "tests/fixtures/data/gpqa_diamond.csv"
MATH500_FIELDS = ["problem", "solution", "answer", "subject", "level", "unique_id"]


def math_rows() -> list[dict]:
    return [json.loads(line) for line in MATH500.read_text(encoding="utf-8").splitlines() if line.strip()]


def gpqa_rows() -> list[dict]:
    with GPQA.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def letter_text(doc: dict) -> str:
    return doc["choices"]["ABCD".index(doc["answer"].strip("()"))]


# --- MATH-500 ---------------------------------------------------------------------------------------

def test_math500_equivalent_answer_is_correct():
    doc = {"answer": "\\frac12"}
    assert t.math500_process_results(doc, ["\\boxed{\\frac{1}{2}}"]) == {"math_verify": 1}
    assert t.math500_process_results({"answer": "\\frac{1}{2}"}, ["So the answer is $\\boxed{0.5}$."]) == {"math_verify": 1}


def test_math500_wrong_and_empty_answers_are_wrong():
    doc = {"answer": "\\frac{1}{2}"}
    assert t.math500_process_results(doc, ["\\boxed{\\frac{1}{3}}"]) == {"math_verify": 0}
    assert t.math500_process_results(doc, [""]) == {"math_verify": 0}
    assert t.math500_process_results(doc, []) == {"math_verify": 0}
    assert t.math500_process_results(doc, [None]) == {"math_verify": 0}  # type: ignore[list-item]


def test_math500_last_boxed_answer_counts():
    # The as_recorded filter scores the raw text, reasoning included: the final \boxed{} wins.
    doc = {"answer": "5"}
    assert t.math500_process_results(doc, ["<think>is it \\boxed{4}?</think> \\boxed{5}"]) == {"math_verify": 1}
    assert t.math500_process_results(doc, ["<think>is it \\boxed{5}?</think> \\boxed{4}"]) == {"math_verify": 0}


def test_math500_matches_lm_evals_own_math_verify():
    """Same value as lm-eval's minerva_math process_results["math_verify"], whose gold is the solution."""
    from lm_eval.tasks.minerva_math.utils import process_results

    texts = ["\\boxed{5}", "\\boxed{\\frac{2}{4}}", "The answer is $6$.", "\\boxed{7}", "", "<think>x", "\\boxed{0.5}"]
    for row in math_rows():
        for text in texts:
            ours = t.math500_process_results(row, [text])["math_verify"]
            assert ours == process_results(row, [text])["math_verify"], (row["unique_id"], text)
            assert ours == process_results({**row, "solution": t.math500_gold(row)}, [text])["math_verify"]


def test_math500_fixture_schema():
    rows = math_rows()
    assert len(rows) == 6
    from lm_eval.tasks.minerva_math.utils import last_boxed_only_string, remove_boxed

    for row in rows:
        assert list(row) == MATH500_FIELDS
        assert isinstance(row["level"], int) and 1 <= row["level"] <= 5
        assert isinstance(row["answer"], str)
        assert re.fullmatch(r"test/[a-z_]+/\d+\.json", row["unique_id"])
        assert remove_boxed(last_boxed_only_string(row["solution"])) == row["answer"]
        assert t.math500_process_results(row, [row["solution"]]) == {"math_verify": 1}


# --- GPQA Diamond -----------------------------------------------------------------------------------

def test_gpqa_order_is_fixed_per_item_and_independent_of_global_random():
    rows = gpqa_rows()
    first = [t.gpqa_doc(r) for r in rows]
    random.seed(123)
    random.shuffle(list(range(10)))
    second = [t.gpqa_doc(r) for r in rows]
    assert [d["choices"] for d in first] == [d["choices"] for d in second]
    assert [d["answer"] for d in first] == [d["answer"] for d in second]
    orders = [t.gpqa_choice_order(r) for r in rows]
    assert any(o != [0, 1, 2, 3] for o in orders)  # not the identity for every item
    assert len({tuple(o) for o in orders}) > 1  # and not one order for all items


def test_gpqa_order_depends_on_the_recorded_seed():
    from harness.benchmarks import spec

    rows = gpqa_rows()
    recorded = spec("gpqa_diamond").task().process_docs_args["seed"]  # what the run's task files record
    before = [t.gpqa_choice_order(r, recorded) for r in rows]
    assert before == [t.gpqa_choice_order(r) for r in rows]  # the default is the recorded seed
    assert [t.gpqa_choice_order(r, recorded + 1) for r in rows] != before


def test_gpqa_correct_letter_maps_to_correct_text():
    from lm_eval.tasks.gpqa.cot_zeroshot.utils import preprocess

    for row in gpqa_rows():
        doc = t.gpqa_doc(row)
        assert doc["answer"] in {"(A)", "(B)", "(C)", "(D)"}
        assert letter_text(doc) == preprocess(row["Correct Answer"])
        assert [doc[f"choice{i}"] for i in range(1, 5)] == doc["choices"]
        assert sorted(doc["choices"]) == sorted(preprocess(row[k]) for k in
                                                ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"))
        assert doc["Question"] == row["Question"]  # lm-eval leaves the question as it is
        assert doc["Record ID"] == row["Record ID"]


def test_gpqa_key_falls_back_to_question_sha():
    row = {k: v for k, v in gpqa_rows()[0].items() if k != "Record ID"}
    assert re.fullmatch(r"[0-9a-f]{64}", t.gpqa_choice_key(row))
    assert t.gpqa_choice_key({**row, "Record ID": ""}) == t.gpqa_choice_key(row)
    assert t.gpqa_choice_key({**row, "Question": row["Question"] + "?"}) != t.gpqa_choice_key(row)
    assert t.gpqa_doc(row)["choices"] == t.gpqa_doc(row)["choices"]


def test_gpqa_process_docs_on_a_csv_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("csv", data_files={"train": str(GPQA)}, cache_dir=str(tmp_path))["train"]
    out = t.gpqa_process_docs(ds)
    assert len(out) == 5
    for doc, row in zip(out, gpqa_rows(), strict=True):
        expected = t.gpqa_doc(row)
        for key in ("choice1", "choice2", "choice3", "choice4", "choices", "answer", "Question", "Record ID"):
            assert doc[key] == expected[key]


def test_gpqa_flexible_extract_takes_the_last_letter():
    doc = t.gpqa_doc(gpqa_rows()[0])
    assert t.gpqa_extract([doc], ["First (A), then (C); final answer: (B)."]) == ["(B)"]
    assert t.gpqa_extract([doc], ["no letter at all"]) == ["[invalid]"]


def test_gpqa_process_results_scores_like_lm_eval():
    rows = gpqa_rows()
    docs = [t.gpqa_doc(r) for r in rows]
    for doc in docs:
        right, wrong = doc["answer"], next(x for x in ("(A)", "(B)", "(C)", "(D)") if x != doc["answer"])
        assert t.gpqa_process_results(doc, [f"<think>maybe {wrong}</think> The answer is {right}"]) == {"exact_match": 1}
        assert t.gpqa_process_results(doc, [f"I think {right}. No: the answer is {wrong}."]) == {"exact_match": 0}
        assert t.gpqa_process_results(doc, [""]) == {"exact_match": 0}
        # Without a letter, lm-eval's fallback matches the text of a choice.
        assert t.gpqa_process_results(doc, [f"It is {letter_text(doc)}"]) == {"exact_match": 1}
    # A raw CSV row is processed first; the batch form gives the same scores.
    texts = [f"The answer is {d['answer']}" for d in docs]
    assert t.gpqa_process_results(rows[0], [texts[0]]) == {"exact_match": 1}
    assert t.gpqa_process_results_batch(docs, texts) == [t.gpqa_process_results(d, [x]) for d, x in zip(docs, texts, strict=True)]


def test_gpqa_settings_are_lm_evals_cot_zeroshot_yaml():
    import lm_eval.tasks.gpqa.cot_zeroshot as pkg

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    cfg = yaml.load((Path(pkg.__path__[0]) / "_gpqa_cot_zeroshot_yaml").read_text(), Loader=Loader)  # noqa: S506
    from harness.benchmarks import spec

    assert cfg["doc_to_text"] == spec("gpqa_diamond").task().doc_to_text  # the registry spec's prompt is lm-eval's
    assert cfg["doc_to_target"] == spec("gpqa_diamond").task().doc_to_target
    (flex,) = [f for f in cfg["filter_list"] if f["name"] == "flexible-extract"]
    steps = flex["filter"]
    assert [s["function"] for s in steps] == ["multi_choice_regex", "take_first"]
    assert {k: v for k, v in steps[0].items() if k != "function"} == t.GPQA_FLEXIBLE_EXTRACT
    (em,) = [m for m in cfg["metric_list"] if m["metric"] == "exact_match"]
    assert {k: em[k] for k in t.GPQA_EXACT_MATCH_KWARGS} == t.GPQA_EXACT_MATCH_KWARGS


def test_gpqa_fixture_header():
    with GPQA.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert len(header) == 78
    for col in ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
                "Record ID", "High-level domain", "Subdomain", "Explanation", "Writer's Difficulty Estimate"):
        assert col in header
    assert len(gpqa_rows()) == 5
