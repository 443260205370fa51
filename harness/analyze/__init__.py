"""`harness analyze --run DIR`: raw tool outputs + proxy logs -> analysis/summary.json + tidy CSVs.

Inputs come from the run directory (raw/, proxy/, manifest.json) and the study config (DIR/config.yaml
by default): candidate/baseline, taxonomy, training data, published scores, HumanEval prompts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("analyze", help="compute every statistic of the report into analysis/summary.json")
    p.add_argument("--run", required=True, help="run directory, e.g. results/demo")
    p.add_argument("--config", help="study config (default: RUN/config.yaml when present)")
    p.add_argument("--candidate", action="append",
                   help="candidate model key; repeat for several candidates against one baseline (default: from the config)")
    p.add_argument("--baseline", help="baseline model key (default: from the config)")
    p.add_argument("--taxonomy", help="taxonomy YAML (default: config's, else configs/taxonomy.yaml)")
    p.add_argument("--training-data", help="training set file or folder (default: config's)")
    p.add_argument("--published-scores", help="published scores YAML (default: config's, else configs/published_scores.yaml)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="analyze a run with missing or errored items: pair on the complete items and say how many "
                        "were left out (default: exit 3)")
    p.set_defaults(func=run)

INCOMPLETE_EXIT = 3


def _existing(*paths: Any) -> Path | None:
    for p in paths:
        if p and Path(p).exists():
            return Path(p)
    return None


def run(args: argparse.Namespace) -> int:
    from harness.cli import UsageError
    from harness.config import dataset_file, load_config, training_data_dir

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    cfg_path = Path(args.config) if args.config else (run_dir / "config.yaml" if (run_dir / "config.yaml").is_file() else None)
    cfg = load_config(cfg_path) if cfg_path else None
    candidates: list[str] = args.candidate or (cfg.candidates if cfg else [])
    baseline = args.baseline or (cfg.baseline if cfg else None)
    if not candidates or not baseline:
        raise UsageError("no config found: give --candidate NAME and --baseline NAME")
    if baseline in candidates:
        raise UsageError("candidate and baseline must differ")
    if len(set(candidates)) != len(candidates):
        raise UsageError(f"--candidate names a model twice: {', '.join(candidates)}")
    taxonomy_path = _existing(args.taxonomy, cfg.taxonomy if cfg else None, REPO_CONFIGS / "taxonomy.yaml")
    if args.taxonomy and taxonomy_path != Path(args.taxonomy):
        raise UsageError(f"{args.taxonomy}: taxonomy file not found")
    published_path = _existing(args.published_scores, cfg.published_scores if cfg else None,
                               REPO_CONFIGS / "published_scores.yaml")
    training_path = Path(args.training_data) if args.training_data else (training_data_dir(cfg) if cfg else None)
    from harness.benchmarks import registry

    # The code benchmarks' dataset files: task prompts for names, categories and leakage.
    code_paths = {b: dataset_file(cfg, b) for b in cfg.benchmarks if registry()[b].runner == "evalplus"} if cfg else {}
    from harness.analyze.completeness import expected_from_config

    expected = expected_from_config(cfg) if cfg else {}
    return analyze(run_dir, candidates, baseline, taxonomy_path, training_path, published_path, code_paths, cfg_path,
                   expected=expected, allow_incomplete=args.allow_incomplete)


def analyze(run_dir: Path, candidate: str | list[str], baseline: str, taxonomy_path: Path | None, training_path: Path | None,
            published_path: Path | None, code_paths: dict[str, Path] | None, cfg_path: Path | None,
            expected: dict[tuple[str, str], int] | None = None, allow_incomplete: bool = False) -> int:
    from harness.analyze import tables
    from harness.analyze.categories import load_taxonomy
    from harness.analyze.completeness import assess
    from harness.analyze.load import load_code_prompts, load_run
    from harness.analyze.samples_export import write_samples
    from harness.analyze.summary import build_summary
    from harness.analyze.training import load_examples
    from harness.benchmarks import registry
    from harness.cli import UsageError
    from harness.io import atomic_write_json, sha256_file
    from harness.records import Summary, parse

    candidates = [candidate] if isinstance(candidate, str) else list(candidate)
    rd = load_run(run_dir)
    completeness = assess(rd, expected or {}, set(registry().where(runner="lm_eval")))
    incomplete = [c for c in completeness.values() if c.missing or c.errors]
    if incomplete and not allow_incomplete:
        for c in incomplete:
            print(f"incomplete: {c.model}/{c.bench}: {c.scored} of {c.expected} item x repeat scored, "
                  f"{c.missing} missing, {c.errors} errored", file=sys.stderr)
        print(f"error: {run_dir} is incomplete; rerun `harness eval` to finish it, or analyze what is there with "
              f"--allow-incomplete", file=sys.stderr)
        return INCOMPLETE_EXIT
    present = {m for m, _ in rd.benches}
    for cand in candidates:
        if cand not in present and baseline not in present:
            raise UsageError(f"neither {cand!r} nor {baseline!r} has results in {run_dir}/raw "
                             f"(found: {', '.join(sorted(present)) or 'none'})")
    tax = load_taxonomy(taxonomy_path)
    he_prompts = load_code_prompts(code_paths or {}, {b for _, b in rd.benches if registry()[b].runner == "evalplus"})
    extra: list[dict[str, Any]] = []
    training = None
    if training_path is not None:
        if not training_path.exists():
            raise UsageError(f"{training_path}: training data not found")
        training = load_examples(training_path)
        extra += [dict(e, role="training_data") for e in training[1]]
    for bench in sorted({b for _, b in rd.benches}):  # the spec each benchmark was analysed under
        spec_file = Path(registry()[bench].source)
        extra.append({"path": str(spec_file), "sha256": sha256_file(spec_file), "role": f"benchmark_spec:{bench}"})
    for role, p in (("config", cfg_path), ("taxonomy", taxonomy_path), ("published_scores", published_path)):
        if p is not None and Path(p).is_file():
            extra.append({"path": str(p), "sha256": sha256_file(p), "role": role})
    manifest = None
    mpath = run_dir / "manifest.json"
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
            extra.append({"path": "manifest.json", "sha256": sha256_file(mpath), "role": "manifest"})
        except ValueError:
            manifest = {"error": "manifest.json is not valid JSON"}
    summary = build_summary(rd, candidates, baseline, tax, he_prompts, training, published_path, manifest, extra,
                            completeness={k: c.as_dict() for k, c in completeness.items()})
    parse(Summary, summary, "analysis/summary.json (as built)")  # the contract the report reads; fails loudly here
    out = run_dir / "analysis"
    tables.write_tables(out, rd, summary)
    write_samples(out, rd, tax, he_prompts)  # every generation's text, for report.html's sample explorer
    atomic_write_json(out / "summary.json", summary)
    for w in summary["inputs"]["warnings"]:
        print(f"warning: {w}")
    print(f"wrote {out / 'summary.json'}")
    return 0
