"""Benchmarks whose registry runner is lm_eval, through lm-eval 0.4.13 `local-chat-completions`, via the proxy.

We generate our own task YAMLs from the registry spec (named by the benchmark key, like lm-eval's
built-ins where one exists) to pin the data source to a local file and to score every generation under
both protocols from one generation: filter `as_recorded` scores the raw text as lm-eval would;
filter `reasoning_stripped` scores the text after the last `</think>`.

lm-eval runs as a subprocess, one per model x benchmark x repeat: it writes its results and
samples files only at the end, so a killed run leaves nothing half-written, and the proxy's
response cache makes the rerun free for everything already generated.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from harness import SCHEMA_VERSION
from harness.benchmarks import spec as bench_spec
from harness.config import StudyConfig, dataset_file
from harness.datasets import check_schema
from harness.io import atomic_write_json, atomic_write_text, utc_now
from harness.nltk_data import ensure_sentence_data

log = logging.getLogger(__name__)

PROTOCOL_FILTERS = """filter_list:
  - name: as_recorded
    filter:
      - function: take_first
  - name: reasoning_stripped
    filter:
      - function: custom
        filter_fn: !function utils.strip_think
      - function: take_first
"""

# lm-eval's `dataset_path` loader for each local file format.
LOADERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def _alias(ref: str) -> str:
    """The name a `module:function` reference gets in a task folder's utils.py."""
    module, _, name = ref.partition(":")
    return f"{module.replace('.', '_')}__{name}"


def _references(bench: str) -> list[str]:
    """Every `module:function` the benchmark's task YAML calls through `!function utils.<alias>`."""
    task = bench_spec(bench).task()
    refs = [task.process_results] + ([task.process_docs] if task.process_docs else [])
    refs += [agg for _, agg in task.metrics if ":" in agg]
    return list(dict.fromkeys(refs))


def task_yaml(cfg: StudyConfig, bench: str) -> str:
    """The lm-eval task definition for one benchmark (its registry spec), pinned to its local data file."""
    spec, task = cfg.benchmarks[bench], bench_spec(bench).task()
    data = dataset_file(cfg, bench)
    gen: dict[str, Any] = {
        # No stop strings: AIME's built-in "Question:" stop can fire inside a reasoning block.
        "until": [],
        "do_sample": True,
        "max_gen_toks": spec.max_tokens,
        **{k: v for k, v in cfg.sampling.request_fields().items() if k != "seed"},  # seed: model_args
    }
    body: dict[str, Any] = {
        "task": bench,
        "dataset_path": LOADERS[data.suffix],
        "dataset_kwargs": {"data_files": {"train": str(data)}},
        "output_type": "generate_until",
        "test_split": "train",
        "doc_to_text": task.doc_to_text,
        "doc_to_target": task.doc_to_target,
    }
    if task.doc_to_choice is not None:
        body["doc_to_choice"] = task.doc_to_choice
    body.update({
        "generation_kwargs": gen,
        "num_fewshot": 0,
        "repeats": 1,
        "metadata": {"version": task.version, "harness_dataset": str(data),
                     **({"process_docs_args": task.process_docs_args} if task.process_docs_args else {})},
    })
    functions = [f"process_results: !function utils.{_alias(task.process_results)}"]
    if task.process_docs:
        functions.append(f"process_docs: !function utils.{_alias(task.process_docs)}")
    metrics = ["metric_list:"]
    for name, agg in task.metrics:
        agg_text = f"!function utils.{_alias(agg)}" if ":" in agg else agg
        metrics += [f"  - metric: {name}", f"    aggregation: {agg_text}", "    higher_is_better: true"]
    return (yaml.safe_dump(body, sort_keys=False, allow_unicode=True) + "\n".join(functions) + "\n"
            + "\n".join(metrics) + "\n" + PROTOCOL_FILTERS)


def task_utils(bench: str) -> str:
    """The task folder's utils.py: the reasoning filter, and the spec's functions under their aliases."""
    task = bench_spec(bench).task()
    lines = ["from harness.runners.lm_eval_tasks import strip_think  # noqa: F401"]
    for ref in _references(bench):
        module, _, name = ref.partition(":")
        if ref == task.process_docs and task.process_docs_args:  # bound here: lm-eval passes the dataset only
            lines += ["import functools", f"from {module} import {name} as _{_alias(ref)}",
                      f"{_alias(ref)} = functools.partial(_{_alias(ref)}, **{task.process_docs_args!r})"]
        else:
            lines.append(f"from {module} import {name} as {_alias(ref)}  # noqa: F401")
    return "\n".join(lines) + "\n"


def write_task_dir(cfg: StudyConfig, bench: str, root: Path) -> Path:
    task_dir = root / bench
    atomic_write_text(task_dir / f"{bench}.yaml", task_yaml(cfg, bench))
    atomic_write_text(task_dir / "utils.py", task_utils(bench))
    return task_dir


def completed_seeds(out_dir: Path) -> dict[int, str]:
    """Seeds whose lm-eval run finished: a results file whose samples file is there too."""
    done: dict[int, str] = {}
    for results in sorted(out_dir.glob("results_*.json")):
        stamp = results.stem.removeprefix("results_")
        if not list(out_dir.glob(f"samples_*_{stamp}.jsonl")):
            continue
        try:
            model_args = json.loads(results.read_text()).get("config", {}).get("model_args", {})
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(model_args, str):  # older lm-eval: "k=v,k=v"
            model_args = dict(kv.split("=", 1) for kv in model_args.split(",") if "=" in kv)
        if "seed" in model_args:
            done[int(model_args["seed"])] = results.name
    return done


def lm_eval_command(cfg: StudyConfig, model: str, bench: str, seed: int, proxy_url: str,
                    task_dir: Path, out_dir: Path) -> list[str]:
    spec = cfg.benchmarks[bench]
    model_args = {
        "base_url": f"{proxy_url}/{model}/v1/chat/completions",
        "model": cfg.models[model].alias or model,
        "num_concurrent": cfg.concurrency(model),  # slots x replicas
        "max_retries": cfg.request.max_retries,
        "timeout": cfg.request.timeout_s,
        "seed": seed,
        "tokenized_requests": False,
        # Replaces lm-eval's default `Authorization: Bearer $OPENAI_API_KEY`; tags the proxy record.
        "header": {"X-Harness-Benchmark": bench},
    }
    argv = [
        sys.executable, "-m", "lm_eval", "run",
        "--model", "local-chat-completions", "--model_args", json.dumps(model_args),
        "--tasks", bench, "--include_path", str(task_dir), "--apply_chat_template",
        "--output_path", str(out_dir / "results.json"), "--log_samples",
        "--seed", f"0,{seed},{seed},{seed}",
    ]
    if spec.system_instruction:
        argv += ["--system_instruction", spec.system_instruction]
    if spec.limit:
        argv += ["--limit", str(spec.limit)]
    return argv


def lm_eval_env(cfg: StudyConfig, sentence_data_root: str | None = None) -> dict[str, str]:
    data = Path(cfg.data_dir).resolve()
    env = dict(os.environ)
    nltk_roots = [r for r in (sentence_data_root, str(data / "nltk_data"), env.get("NLTK_DATA")) if r]
    env.update({
        "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",  # every input is local; never reach a hub
        "HF_DATASETS_CACHE": str(data / ".hf-datasets-cache"),
        "NLTK_DATA": os.pathsep.join(nltk_roots),
        "TOKENIZERS_PARALLELISM": "false",
    })
    env.pop("OPENAI_API_KEY", None)  # never sent, never logged
    return env


def run_lm_eval_benchmark(cfg: StudyConfig, model: str, bench: str, proxy_url: str, run_dir: Path) -> dict[str, Any]:
    """Run every repeat of one benchmark for one model; skip repeats already finished."""
    out_dir = run_dir / "raw" / model / bench
    out_dir.mkdir(parents=True, exist_ok=True)
    n_items = check_schema(bench, dataset_file(cfg, bench))
    task_dir = write_task_dir(cfg, bench, run_dir / "tasks")
    # IFEval's checkers need nltk punkt_tab; without it lm-eval crashes after every generation is done.
    sentence_data = ensure_sentence_data() if bench_spec(bench).needs_sentence_data else None
    env = lm_eval_env(cfg, sentence_data["root"] if sentence_data else None)
    finished = completed_seeds(out_dir)
    files = []
    for seed in cfg.repeat_seeds(model, bench):
        if seed in finished:
            log.info("%s/%s seed %d already done (%s)", model, bench, seed, finished[seed])
            files.append(finished[seed])
            continue
        argv = lm_eval_command(cfg, model, bench, seed, proxy_url, task_dir, out_dir)
        log_path = run_dir / "logs" / f"lm-eval-{model}-{bench}-seed{seed}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as fh:
            proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                  stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            _quarantine_partial(out_dir, finished)
            # lm-eval aborts the whole task when one request fails for good and writes no samples: every item
            # of this repeat is missing (never a wrong answer); the rerun gets the answered ones from the cache.
            raise RuntimeError(f"lm-eval failed for {model}/{bench} seed {seed} (exit {proc.returncode}): all {n_items} "
                               f"items of this repeat are missing; {_answered(run_dir, model, bench)} generation(s) "
                               f"already answered are in the proxy cache; rerun `harness eval` (log: {log_path})")
        finished = completed_seeds(out_dir)
        if seed not in finished:
            raise RuntimeError(f"lm-eval finished but wrote no results for {model}/{bench}; see {log_path}")
        files.append(finished[seed])
    summary = {"schema_version": SCHEMA_VERSION, "model": model, "benchmark": bench, "finished": utc_now(),
               "items": n_items, "repeats": len(files), "results_files": files, "runner": "lm-eval",
               "sentence_splitter_data": sentence_data}
    atomic_write_json(out_dir / "done.json", summary)
    return summary


def _answered(run_dir: Path, model: str, bench: str) -> int:
    """Successful proxy records for this model x benchmark (what a rerun gets from the cache)."""
    from harness.io import iter_jsonl

    path = run_dir / "proxy" / f"{model}.jsonl"
    if not path.is_file():
        return 0
    return sum(1 for r in iter_jsonl(path) if r.get("benchmark") == bench and r.get("status") == 200 and r.get("error") is None)


def _quarantine_partial(out_dir: Path, finished: dict[int, str]) -> None:
    """Move a results file without its samples (a crash between lm-eval's two writes) aside."""
    keep = set(finished.values())
    for results in out_dir.glob("results_*.json"):
        if results.name not in keep:
            stamp = results.stem.removeprefix("results_")
            if not list(out_dir.glob(f"samples_*_{stamp}.jsonl")):
                aside = out_dir / ".incomplete"
                aside.mkdir(exist_ok=True)
                shutil.move(str(results), aside / results.name)
