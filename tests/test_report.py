"""`harness report`: twelve sections, figures that render, and every number taken from summary.json."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ["Executive Summary", "Methodology", "Overall Scorecard", "Statistical Significance", "AIME Results",
            "IFEval Results", "HumanEval+ Results", "Reasoning Volume Analysis", "Training Dataset Composition",
            "Dataset vs Performance", "Comparison with Other Models", "Conclusions"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import synthetic_study

    run = tmp_path_factory.mktemp("syn") / "run"
    assert synthetic_study.main([str(run), "--scale", "0.05"]) == 0
    assert main(["analyze", "--run", str(run)]) == 0  # reads run/config.yaml
    assert main(["report", "--run", str(run)]) == 0
    return run


def test_twelve_sections_and_appendices(study):
    text = (study / "report.md").read_text()
    heads = re.findall(r"^## (\d+)\. (.+)$", text, flags=re.M)
    assert [int(n) for n, _ in heads] == list(range(1, 13))
    for (_, title), want in zip(heads, SECTIONS, strict=True):
        assert title.startswith(want)
    assert "## Appendix A. Validity audit" in text and "## Appendix B. Provenance and inputs" in text
    assert "{" not in text.split("## 1.")[1].split("## 2.")[0]  # no unformatted dicts leaked into prose


def test_figures_render(study):
    for name in ("scores", "category_deltas", "reasoning_lengths", "reasoning_vs_correctness"):
        data = (study / "figures" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"figures/{name}.png" in (study / "report.md").read_text()


def test_numbers_come_from_summary(study, tmp_path):
    """Change numbers in summary.json: the report must follow (nothing typed by hand)."""
    s = json.loads((study / "analysis" / "summary.json").read_text())
    b = s["benchmarks"]["aime24"]
    cand = s["candidate"]
    orig = f"{b['scores'][cand]['correct']}/{b['scores'][cand]['n']}"
    assert orig in (study / "report.md").read_text()
    b["scores"][cand].update(correct=29, n=31, accuracy=29 / 31)
    b["paired"]["p_value"] = 1.234e-7
    run2 = tmp_path / "run2"
    (run2 / "analysis").mkdir(parents=True)
    (run2 / "analysis" / "summary.json").write_text(json.dumps(s))
    assert main(["report", "--run", str(run2)]) == 0
    text = (run2 / "report.md").read_text()
    assert "29/31 (93.5%)" in text and "1.23×10⁻⁷" in text


def test_report_without_summary_exits_2(tmp_path):
    assert main(["report", "--run", str(tmp_path)]) == 2


def test_conclusions_are_generated(study):
    """Every paired benchmark's delta and direction appear in the conclusions, significant or not."""
    s = json.loads((study / "analysis" / "summary.json").read_text())
    concl = (study / "report.md").read_text().split("## 12. Conclusions")[1]
    paired = {b: v["paired"] for b, v in s["benchmarks"].items() if v["paired"] and v["paired"]["delta_pp"] is not None}
    assert paired, "the synthetic study must pair at least one benchmark"
    for bench, p in paired.items():
        assert f"{p['delta_pp']:+.1f}pp" in concl, bench
    assert any(w in concl for w in ("improved", "degraded", "unchanged"))


def test_missing_summary_section_is_an_error(study, tmp_path, capsys):
    """The report reads summary.json through its model: a renamed section is refused, not rendered empty."""
    s = json.loads((study / "analysis" / "summary.json").read_text())
    s["reasoning_vol"] = s.pop("reasoning_volume")
    run2 = tmp_path / "renamed"
    (run2 / "analysis").mkdir(parents=True)
    (run2 / "analysis" / "summary.json").write_text(json.dumps(s))
    assert main(["report", "--run", str(run2)]) == 2
    assert "reasoning_volume" in capsys.readouterr().err
    assert not (run2 / "report.md").exists()


def test_unknown_schema_version_is_refused(study, tmp_path, capsys):
    s = json.loads((study / "analysis" / "summary.json").read_text())
    s["schema_version"] = 99
    run2 = tmp_path / "future"
    (run2 / "analysis").mkdir(parents=True)
    (run2 / "analysis" / "summary.json").write_text(json.dumps(s))
    assert main(["report", "--run", str(run2)]) == 2
    err = capsys.readouterr().err
    assert "schema_version 99" in err and "harness analyze" in err


def test_report_holds_no_machine_path(study):
    text = (study / "report.md").read_text()
    for root in {str(study.parent), str(REPO), str(Path.home())}:
        assert root not in text
