"""`harness import`: bring outside results into a run directory, untouched, for re-analysis.

Accepted (plain or gzip-compressed `.gz`, stored decompressed): lm-eval 0.4.11–0.4.13 `samples_<task>_<date>.jsonl` (+ their results `*_<date>.json`)
for benchmarks whose registry runner is lm_eval; evalplus 0.3.1 `*_eval_results.json` for runner evalplus; proxy logs
(`--proxy-log`, copied to proxy/<model>.jsonl). Files are copied byte for byte into
raw/<model>/<bench>/ and listed with their sha256 in raw/<model>/<bench>/import.json, which also
tells `analyze` that these are imported results (primary protocol `as_recorded`).
A file that belongs to another benchmark (task name, or document schema) is refused with exit 2.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.benchmarks import registry
from harness.io import atomic_write_json, iter_jsonl, sha256_file, utc_now
from harness.lm_eval_files import PairingError, as_obj, is_samples_file, pair, read_results, unpaired_results


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import", help="copy outside lm-eval/evalplus results (and proxy logs) into a run")
    p.add_argument("--run", required=True, help="run directory, e.g. results/reference")
    p.add_argument("--model", required=True, help="model key in the run (e.g. distilled)")
    p.add_argument("--benchmark", required=True, help="a benchmark key of the registry (harness/benchmarks/*.yaml)")
    p.add_argument("--proxy-log", action="append", default=[], help="proxy log JSONL -> proxy/<model>.jsonl")
    p.add_argument("files", nargs="*", help="samples_*.jsonl, results *.json, *_eval_results.json")
    p.set_defaults(func=run)


def _usage(msg: str) -> Exception:
    from harness.cli import UsageError

    return UsageError(msg)


def bench_of_doc(doc: dict[str, Any], expected: str | None = None) -> str | None:
    """The lm-eval benchmark whose dataset schema (registry `dataset.required_fields`) the document has:
    `expected` when it fits, else the one with the most required fields present."""
    keys = set(doc)
    reg = registry()
    fits = [b for b in reg.where(runner="lm_eval") if set(reg[b].dataset.required_fields) <= keys]
    if expected in fits:
        return expected
    return max(fits, key=lambda b: len(reg[b].dataset.required_fields), default=None)


def classify(path: Path) -> str:
    """One of lm_samples, lm_results, evalplus_results, generations, evalplus_samples: by content, not name."""
    name = path.name
    if name.endswith(".jsonl"):
        if is_samples_file(path):
            return "lm_samples"
        if name == "generations.jsonl":
            return "generations"
        return "evalplus_samples"
    if name.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _usage(f"{path}: not JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("eval"), dict):
            return "evalplus_results"
        if isinstance(data, dict) and isinstance(data.get("results"), dict):
            return "lm_results"
    raise _usage(f"{path}: unrecognised file (expected lm-eval samples .jsonl / results .json, or evalplus "
                 f"eval_results .json)")


def check_lm_samples(path: Path, bench: str) -> None:
    rec = next(iter_jsonl(path), None)
    if rec is None:
        raise _usage(f"{path}: no readable sample line")
    doc = as_obj(rec.get("doc"))
    if not isinstance(doc, dict):
        raise _usage(f"{path}: first sample has no document")
    found = bench_of_doc(doc, bench)
    if found != bench:
        raise _usage(f"{path}: documents have the {found or 'unknown'} schema "
                     f"(fields {sorted(doc)[:6]}), not {bench}'s")


def check_lm_results(path: Path, bench: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _usage(f"{path}: not JSON ({exc})") from None
    tasks = list((data.get("results") or {}).keys())
    if bench not in tasks:
        raise _usage(f"{path}: results for task(s) {tasks}, not {bench!r}")
    return data


def check_evalplus(path: Path, bench: str) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _usage(f"{path}: not JSON ({exc})") from None
    ev = data.get("eval") if isinstance(data, dict) else None
    if not isinstance(ev, dict) or not ev:
        raise _usage(f"{path}: not an evalplus eval_results file (no 'eval' mapping)")
    tid = next(iter(ev))
    ep = registry()[bench].evalplus
    prefix = ep.id_prefix if ep else ""
    if prefix and not str(tid).startswith(prefix):
        raise _usage(f"{path}: task ids like {tid!r} are not {registry().label(bench)}'s (expected {prefix}...)")


def check_pairing(kinds: list[tuple[Path, str]], dest: Path, bench: str) -> None:
    """Refuse (before copying) what analyze could not use: a results file that pairs with no samples file.

    Pairing is by content (harness.lm_eval_files), over the files given and those already imported.
    """
    samples = {f.name: f for f, k in kinds if k == "lm_samples"}
    results_paths = {f.name: f for f, k in kinds if k == "lm_results"}
    if dest.is_dir():
        for f in dest.iterdir():
            if f.name not in samples and f.suffix == ".jsonl" and is_samples_file(f):
                samples[f.name] = f
            elif f.name not in results_paths and f.suffix == ".json" and f.name not in ("import.json", "done.json"):
                results_paths[f.name] = f
    results = {p: d for p in results_paths.values() if (d := read_results(p)) is not None and bench in d["results"]}
    try:
        pairs = pair(sorted(samples.values()), results, bench)
    except PairingError as exc:
        raise _usage(f"cannot pair results with samples: {exc}") from None
    orphans = unpaired_results(pairs, results)
    if orphans:
        raise _usage(f"{', '.join(p.name for p in orphans)}: no samples file matches these results by content "
                     f"(task {bench!r}, document count, recorded score); import the samples file of the same run")


def _copy(src: Path, dst: Path) -> bool:
    """Copy unless an identical file is already there; refuse to overwrite a different one."""
    if dst.exists():
        if sha256_file(dst) == sha256_file(src):
            return False
        raise _usage(f"{dst} exists with different content; refusing to overwrite")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return True


def _decompressed(files: list[Path], scratch: Path) -> list[tuple[Path, Path]]:
    """(file to import, original) pairs: a `.gz` is decompressed into scratch under its inner name."""
    out = []
    for f in files:
        if f.suffix == ".gz" and f.is_file():
            inner = scratch / f.name[: -len(".gz")]
            try:
                with gzip.open(f, "rb") as src, open(inner, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as exc:
                raise _usage(f"{f}: not a readable gzip file ({exc})") from None
            out.append((inner, f))
        else:
            out.append((f, f))
    return out


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="harness-import-") as scratch:
        return _run(args, Path(scratch))


def _run(args: argparse.Namespace, scratch: Path) -> int:
    run_dir = Path(args.run)
    bench, model = args.benchmark, args.model
    if bench not in registry():
        raise _usage(f"--benchmark {bench!r}: unknown; known: {', '.join(registry().keys())}")
    lm_eval = registry()[bench].runner == "lm_eval"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", model):
        raise _usage(f"model name {model!r} may use only letters, digits, '-' and '_'")
    originals = [Path(f) for f in args.files]
    if not originals and not args.proxy_log:
        raise _usage("nothing to import: give result files and/or --proxy-log")
    for f in originals:
        if not f.is_file():
            raise _usage(f"{f}: no such file")
    pairs = _decompressed(originals, scratch)
    files = [f for f, _ in pairs]
    source_of = {f: orig for f, orig in pairs}
    kinds: list[tuple[Path, str]] = []
    for f in files:
        kind = classify(f)
        if lm_eval:
            if kind == "lm_samples":
                check_lm_samples(f, bench)
            elif kind == "lm_results":
                check_lm_results(f, bench)
            else:
                raise _usage(f"{f}: a {kind} file cannot be imported for {bench}")
        else:
            if kind == "evalplus_results":
                check_evalplus(f, bench)
            elif kind not in ("generations", "evalplus_samples"):
                raise _usage(f"{f}: a {kind} file cannot be imported for {bench}")
        kinds.append((f, kind))
    if lm_eval and files and not any(k == "lm_samples" for _, k in kinds):
        raise _usage(f"no lm-eval samples file among the files: per-item results are needed for {bench}")
    dest = run_dir / "raw" / model / bench
    if lm_eval:
        check_pairing(kinds, dest, bench)
    manifest_path = dest / "import.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {
        "schema_version": SCHEMA_VERSION, "model": model, "benchmark": bench, "files": []}
    copied = 0
    for f, kind in kinds:
        if _copy(f, dest / f.name):
            copied += 1
        orig = source_of[f]
        entry = {"name": f.name, "kind": kind, "source": str(orig.resolve()), "sha256": sha256_file(f),
                 "imported_at": utc_now()}
        if orig != f:
            entry["source_sha256"] = sha256_file(orig)  # of the .gz as given; sha256 is of the stored file
        manifest["files"] = [e for e in manifest["files"] if e["name"] != f.name] + [entry]
    for log in args.proxy_log:
        src = Path(log)
        if not src.is_file():
            raise _usage(f"{src}: no such proxy log")
        if _copy(src, run_dir / "proxy" / f"{model}.jsonl"):
            copied += 1
        manifest.setdefault("proxy_logs", [])
        manifest["proxy_logs"] = [e for e in manifest["proxy_logs"] if e["source"] != str(src.resolve())] + [
            {"source": str(src.resolve()), "sha256": sha256_file(src)}]
    if files:
        manifest["imported"] = True
        atomic_write_json(manifest_path, manifest)
    print(f"imported {copied} new file(s) for {model}/{bench} into {run_dir}")
    return 0
