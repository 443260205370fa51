"""Two candidates against one baseline (issue 10 item 4, DESIGN.md §6 "Several candidates"):
import -> analyze -> report on the reference study's AIME files plus a derived third model.

The third model, `distilled_flip`, is the reference `distilled` model's AIME samples with a documented,
deterministic change: on every item whose doc_id is a multiple of 3 the outcome is flipped. A correct
answer becomes "I could not solve this." (exact_match 0); a wrong one becomes "The answer is
\\boxed{<target>}." (exact_match 1). lm-eval's AIME scorer re-scores that text the same way under both
protocols, so each flipped item changes its outcome whichever protocol is primary.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import reference_files

from harness.cli import main

BENCHES = ("aime24", "aime25")  # IFEval would add ~20 s of re-scoring and nothing to the pairing logic
THIRD = "distilled_flip"


def flipped(src: Path, dst: Path) -> set[str]:
    """Write `src` (lm-eval samples .jsonl.gz) with every third item's outcome flipped; return the flipped doc_ids."""
    out, ids = [], set()
    for line in gzip.decompress(src.read_bytes()).decode().splitlines():
        rec = json.loads(line)
        if int(rec["doc_id"]) % 3 == 0:
            ok = bool(float(rec["exact_match"]))
            text = "I could not solve this." if ok else f"The answer is \\boxed{{{rec['target']}}}."
            rec.update(resps=[[text]], filtered_resps=[text], exact_match=int(not ok))
            ids.add(str(rec["doc_id"]))
        out.append(json.dumps(rec))
    dst.write_text("\n".join(out) + "\n")
    return ids


@pytest.fixture(scope="module")
def three_model_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    tmp = tmp_path_factory.mktemp("three")
    run = tmp / "run"
    files = reference_files()
    for bench in BENCHES:
        for model in ("distilled", "base"):
            samples, results = files[(model, bench)]
            assert main(["import", "--run", str(run), "--model", model, "--benchmark", bench, str(samples), str(results)]) == 0
        src = files[("distilled", bench)][0]
        derived = tmp / src.name.removesuffix(".gz")
        flipped(src, derived)
        # Samples only: the reference results file's aggregate no longer matches the flipped outcomes.
        assert main(["import", "--run", str(run), "--model", THIRD, "--benchmark", bench, str(derived)]) == 0
    assert main(["analyze", "--run", str(run), "--candidate", "distilled", "--candidate", THIRD, "--baseline", "base"]) == 0
    assert main(["report", "--run", str(run)]) == 0
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    return run, summary, (run / "report.md").read_text()


def test_both_candidates_in_comparisons(three_model_run):
    _, s, _ = three_model_run
    assert [(c["candidate"], c["baseline"]) for c in s["comparisons"]] == [("distilled", "base"), (THIRD, "base")]
    # The top level keeps the first comparison, unchanged.
    assert s["candidate"] == "distilled" and s["comparisons"][0]["benchmarks"] == s["benchmarks"]
    for comp in s["comparisons"]:
        assert set(comp["benchmarks"]) == {"aime24", "aime25", "aime_combined"}
        assert comp["statistics"]["family"] == ["aime24", "aime25"]  # Holm per comparison, pooled row left out
        for blk in comp["benchmarks"].values():
            p = blk["paired"]
            assert set(blk["scores"]) == {comp["candidate"], "base"}
            assert {"delta_ci95", "p_holm", "mde_pp"} <= set(p)
            assert p["both"] + p["only_candidate"] + p["only_baseline"] + p["neither"] == blk["n"]


def test_third_model_is_the_flip_of_the_first(three_model_run):
    """Each comparison pairs the right model: the derived candidate differs from `distilled` exactly on the
    flipped items, so its correct count moves by (wrong flipped) - (right flipped) against the same baseline."""
    run, s, _ = three_model_run
    first, second = (c["benchmarks"] for c in s["comparisons"])
    for bench in BENCHES:
        proto = first[bench]["protocol"]
        assert second[bench]["protocol"] == proto  # one protocol per benchmark across the comparisons
        assert second[bench]["scores"]["base"] == first[bench]["scores"]["base"]
        rows = s["per_question"][bench]["rows"]  # the first comparison's per-item outcomes of `distilled`
        right = sum(1 for r in rows if int(r["doc_id"]) % 3 == 0 and r["outcomes"]["distilled"])
        wrong = sum(1 for r in rows if int(r["doc_id"]) % 3 == 0 and r["outcomes"]["distilled"] is False)
        assert right + wrong == len([r for r in rows if int(r["doc_id"]) % 3 == 0]) > 0
        d, f = first[bench]["scores"]["distilled"], second[bench]["scores"][THIRD]
        assert f["n"] == d["n"] and f["correct"] == d["correct"] - right + wrong


def test_validity_and_comparison_cover_every_model(three_model_run):
    _, s, _ = three_model_run
    rows = {(r["model"], r["benchmark"]) for r in s["validity"]["per_model_benchmark"]}
    assert rows == {(m, b) for m in ("distilled", THIRD, "base") for b in BENCHES}
    assert set(s["comparison"]["ours"]) == {"distilled", "base", THIRD}


def test_report_shows_both_candidates(three_model_run):
    _, s, md = three_model_run
    scorecard = md.split("### 3.1 Full results")[1].split("###")[0]
    header = scorecard.strip().splitlines()[0]
    assert all(f" {m} " in header for m in ("distilled", THIRD, "base"))  # a column per model
    for comp in s["comparisons"]:
        title = f"{comp['candidate']} vs {comp['baseline']}"
        section = md.split(f"#### {title}")[1].split("####")[0]
        p = comp["benchmarks"]["aime25"]["paired"]
        row = next(line for line in section.splitlines() if line.startswith("| AIME 2025"))
        assert f"{p['delta_pp']:+.1f}pp" in row and f"{p['only_candidate']} " in row


def test_html_explorer_offers_both_comparisons(three_model_run):
    """report.html (harness/report/html.py) reads summary.comparisons: one selectable comparison each."""
    run, _, _ = three_model_run
    page = (run / "report.html").read_text()
    assert '<option value="0">distilled vs base' in page and f'<option value="1">{THIRD} vs base' in page


def test_config_names_several_candidates(tmp_path):
    """`candidates: [..]` in the study config; analyze takes them from there."""
    import yaml

    from harness.config import ConfigError, parse_config

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "demo.yaml").read_text())
    models = dict(raw["models"])
    models[THIRD] = models[raw["candidate"]]
    base = {**raw, "models": models}
    base.pop("candidate")
    cfg = parse_config({**base, "candidates": [raw["candidate"], THIRD]}, "t.yaml")
    assert cfg.candidate == raw["candidate"] and cfg.candidates == [raw["candidate"], THIRD]
    assert parse_config(raw, "t.yaml").candidates == [raw["candidate"]]  # the single form keeps working
    for bad, says in (({"candidates": [raw["candidate"], "nope"]}, "candidates[1] 'nope' is not among the models"),
                      ({"candidates": [raw["candidate"], raw["baseline"]]}, "candidate and baseline must differ"),
                      ({"candidates": [THIRD, THIRD]}, "names a model twice"),
                      ({"candidate": raw["candidate"], "candidates": [THIRD]}, "must be the first of candidates"),
                      ({"candidates": "x"}, "field 'candidates'")):
        with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
            parse_config({**base, **bad}, "t.yaml")


@pytest.mark.parametrize("cands,says", [(["distilled", "base"], "candidate and baseline must differ"),
                                        (["distilled", "distilled"], "names a model twice")])
def test_analyze_refuses_bad_candidate_lists(three_model_run, capsys, cands, says):
    run, _, _ = three_model_run
    args = [x for c in cands for x in ("--candidate", c)]
    assert main(["analyze", "--run", str(run), *args, "--baseline", "base"]) != 0
    assert says in capsys.readouterr().err
