"""evalplus runner (HumanEval+, MBPP+): our own concurrent chat client, then evalplus 0.3.1 scoring
in the sandbox.

It serves every benchmark whose registry spec (harness/benchmarks) has `runner: evalplus`: the spec's
`evalplus.dataset` is evalplus' dataset name (humaneval | mbpp; it picks the dataset override and the
special oracles in scoring), `dataset.required_fields` the fields every row must have. Both datasets
share evalplus' codegen path: the prompt is the task's `prompt` field (for MBPP+ a docstring with the
task and one example assert), sanitized on the task's `entry_point`.

Why not `evalplus.codegen`: 0.3.1's openai backend caps generations at 768 tokens, retries forever,
sends one request at a time and cannot handle `<think>` (notes/evalplus.md §1.4, §9). So we send
the same prompt evalplus 0.3.1 sends (its system message, `instruction_prefix` and fenced prompt),
with the configured token budget and sampling, through the proxy, and use evalplus only to
sanitize and to score.

Files in out_dir (= results/<run>/raw/<model>/<benchmark>/):
- generations.jsonl: one `harness.records.Generation` per request outcome (append + fsync). Resume key
  (task_id, repeat): a record without error is final and never requested again; a record with an
  error is not a sample: it is never scored, and the next run requests exactly those items again.
- samples_<protocol>.jsonl: {task_id, solution} for every task x repeat, in dataset order, repeat
  r of a task being its r-th line (so evalplus' per-task result list is indexed by repeat).
- samples_<protocol>_eval_results.json: evalplus' own output.
- done.json: written last, atomically, and only when every task x repeat has a final answer;
  otherwise `IncompleteError` names what is missing and nothing is scored.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.benchmarks import BenchmarkSpec, registry
from harness.config import StudyConfig, dataset_file
from harness.datasets import load_rows
from harness.estimators import pass_at_k
from harness.hashing import request_hash
from harness.io import append_jsonl, atomic_write_json, iter_jsonl, utc_now
from harness.reasoning import split_reasoning, strip_reasoning
from harness.records import error_info

log = logging.getLogger(__name__)

RUNNER = "evalplus"  # the registry runner kind this module serves
# What this module itself reads from a row (a spec's required_fields add what its scoring needs).
TASK_FIELDS = ("task_id", "prompt", "entry_point")
PROTOCOLS = ("as_recorded", "reasoning_stripped")
# evalplus 0.3.1: gen/util/openai_request.py (system) and codegen.py (instruction_prefix; the same for
# humaneval and mbpp, it differs only for evalperf).
SYSTEM_MESSAGE = "You are a helpful assistant good at coding."
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following problem "
                      "in a markdown code block:")
# evalplus.sanitize is ~cubic in the number of lines (notes §2: 800 lines -> 47 s). Beyond this many
# lines we sanitize only the last MAX_SANITIZE_LINES lines: the final answer of a long reasoning
# trace is at its end. Counted per protocol as `sanitize_truncated`. Only `as_recorded` of a
# reasoning model ever gets near this; `reasoning_stripped` texts are answers only.
MAX_SANITIZE_LINES = 300
# Before a retry, wait at most this long for the model's server to answer /health (a restart, a model load).
HEALTH_WAIT_S = 120.0

ProgressFn = Callable[[int, int, int], None]


class IncompleteError(RuntimeError):
    """Some task x repeat has no final answer (its last attempt failed): nothing was scored."""


def describe_failure(exc: BaseException) -> dict[str, Any]:
    """`error` for a failed request: HTTP 4xx (but 408/429) is not retriable; anything else is."""
    status = getattr(exc, "status", None)
    retriable = not (isinstance(status, int) and 400 <= status < 500 and status not in (408, 429))
    return error_info(type(exc).__name__ if status is None else f"http_{status}", str(exc)[:500], retriable)


class HTTPStatusError(RuntimeError):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


# ----------------------------------------------------------------------------------------------
# Benchmark, dataset and request


def evalplus_spec(bench: str) -> BenchmarkSpec:
    """The registry spec of an evalplus benchmark; ValueError for any other runner."""
    spec = registry()[bench]
    if spec.runner != RUNNER:
        raise ValueError(f"benchmark {bench!r} has runner {spec.runner!r}, not {RUNNER!r}")
    return spec


def evalplus_dataset(bench: str) -> str:
    """evalplus' dataset name for a benchmark (its spec's `evalplus.dataset`: humaneval | mbpp)."""
    return evalplus_spec(bench).evalplus_run().dataset


def load_tasks(path: Path, limit: int | None = None, bench: str | None = None) -> list[dict[str, Any]]:
    """evalplus task rows from .jsonl or .jsonl.gz, in file order; the first `limit` when set.

    Every row must have the fields this runner reads and, with `bench`, the spec's required fields."""
    required = set(TASK_FIELDS)
    label = "evalplus (HumanEval+/MBPP+)"
    if bench is not None:
        spec = evalplus_spec(bench)
        required |= set(spec.dataset.required_fields)
        label = spec.label
    rows = load_rows(path)
    for row in rows:
        missing = required - set(row)
        if missing:
            raise ValueError(f"{path}: {row.get('task_id', '?')}: not {label} schema, missing {sorted(missing)}")
    return rows[:limit] if limit else rows


def build_messages(prompt: str) -> list[dict[str, str]]:
    """The chat messages evalplus 0.3.1's openai backend sends for one task."""
    prompt = prompt.strip() + "\n"  # evalplus/codegen.py
    user = INSTRUCTION_PREFIX + f"\n```python\n{prompt.strip()}\n```"  # provider/openai.py
    return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": user}]


def build_body(cfg: StudyConfig, model: str, prompt: str, seed: int, bench: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": build_messages(prompt),
        "max_tokens": cfg.benchmarks[bench].max_tokens,
        "stream": False,
        **cfg.sampling.request_fields(seed),
    }


# ----------------------------------------------------------------------------------------------
# Generation


def parse_response(payload: Any) -> dict[str, Any]:
    """Fields of a generation record from a chat-completions response (tolerates content: null)."""
    choice = (payload.get("choices") or [{}])[0] if isinstance(payload, dict) else {}
    message = choice.get("message") or {}
    content = message.get("content")
    reasoning_content = message.get("reasoning_content")
    split = split_reasoning(content, reasoning_content)
    return {
        "content": content,
        "reasoning": split.reasoning if split.has_reasoning else None,
        "answer": split.answer,
        "think_closed": split.think_closed,
        "finish_reason": choice.get("finish_reason"),
        "usage": payload.get("usage") if isinstance(payload, dict) else None,
    }


def _completed(records_path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Latest error-free record per (task_id, repeat)."""
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if records_path.exists():
        for rec in iter_jsonl(records_path):
            if rec.get("error") is None and "task_id" in rec and "repeat" in rec:
                done[(rec["task_id"], int(rec["repeat"]))] = rec
    return done


def _terminate_torn_line(path: Path) -> None:
    """A crash mid-append can leave a line without its newline; the next append must not join it."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as fh:
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


async def _generate(cfg: StudyConfig, model: str, proxy_url: str, jobs: list[dict[str, Any]],
                    records_path: Path, on_record: Callable[[dict[str, Any]], None], bench: str) -> None:
    import aiohttp

    url = f"{proxy_url.rstrip('/')}/{model}/v1/chat/completions"
    health_url = f"{proxy_url.rstrip('/')}/{model}/health"  # llama-server's /health, through the proxy
    headers = {"X-Harness-Benchmark": bench, "Content-Type": "application/json"}
    attempts = cfg.request.max_retries
    timeout = aiohttp.ClientTimeout(total=cfg.request.timeout_s)
    sem = asyncio.Semaphore(cfg.concurrency(model))  # slots x replicas

    async def one(session: aiohttp.ClientSession, job: dict[str, Any]) -> None:
        async with sem:
            error: dict[str, Any] | None = None
            parsed: dict[str, Any] = {}
            t0 = time.monotonic()
            attempt = 0
            for attempt in range(1, attempts + 1):
                t0 = time.monotonic()
                try:
                    async with session.post(url, json=job["body"], headers=headers) as resp:
                        text = await resp.text()
                        if resp.status != 200:
                            raise HTTPStatusError(resp.status, text)
                        parsed = parse_response(json.loads(text))
                        error = None
                        break
                except Exception as exc:  # any failure of this item is recorded, never fatal to the run
                    error = describe_failure(exc)
                    log.warning("%s %s repeat %d: attempt %d/%d: %s", model, job["task_id"], job["repeat"],
                                attempt, attempts, error["message"])
                    if not error["retriable"]:
                        break
                    if attempt < attempts:
                        await asyncio.sleep(min(30.0, 2.0 ** (attempt - 1)) * (0.5 + random.random()))  # noqa: S311 - jitter
                        # A server that died is being restarted (serve supervises it, compose restarts it):
                        # spend the retry on a live server, not on a connection refused.
                        await _wait_until_healthy(session, health_url, min(HEALTH_WAIT_S, cfg.request.timeout_s))
            record = {
                "schema_version": SCHEMA_VERSION,
                "ts": utc_now(),
                "model": model,
                "task_id": job["task_id"],
                "repeat": job["repeat"],
                "seed": job["seed"],
                "request_hash": request_hash(job["body"]),
                "content": parsed.get("content"),
                "reasoning": parsed.get("reasoning"),
                "answer": parsed.get("answer"),
                "think_closed": parsed.get("think_closed"),
                "finish_reason": parsed.get("finish_reason"),
                "usage": parsed.get("usage"),
                "latency_s": round(time.monotonic() - t0, 3),
                "attempts": attempt,
                "error": error,
            }
            append_jsonl(records_path, record)
            on_record(record)

    connector = aiohttp.TCPConnector(limit=cfg.concurrency(model))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks = [asyncio.ensure_future(one(session, job)) for job in jobs]
        # First failure (e.g. an interrupt raised by a progress callback) cancels the rest before
        # the session closes, instead of leaving them to fail against a closed session.
        finished, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in finished:
            if t.exception() is not None:
                raise t.exception()  # type: ignore[misc]


async def _wait_until_healthy(session: Any, url: str, limit_s: float) -> bool:
    """Poll a server's /health until it answers 200 (True) or limit_s passes (False); never raises."""
    import aiohttp

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status == 200:
                    return True
        except Exception:  # noqa: S110  (down or loading: keep polling until the deadline)
            pass
        await asyncio.sleep(1.0)
    return False


# ----------------------------------------------------------------------------------------------
# Samples, evaluation, summary


def _sanitize(text: str, entry_point: str, counts: dict[str, int]) -> str:
    from evalplus.sanitize import sanitize

    if not text.strip():
        return ""
    lines = text.splitlines()
    if len(lines) > MAX_SANITIZE_LINES:
        counts["sanitize_truncated"] += 1
        text = "\n".join(lines[-MAX_SANITIZE_LINES:])
    try:
        return sanitize(text, entry_point)
    except Exception as exc:  # a sanitizer crash on odd text scores as no answer, never stops the run
        counts["sanitize_errors"] += 1
        log.warning("evalplus sanitize failed (%s): scoring as no answer", exc)
        return ""


def protocol_text(record: dict[str, Any] | None, protocol: str) -> str:
    """The text a protocol scores; "" (no answer) for errors, null content and length cut-offs."""
    if record is None or record.get("error") is not None:
        return ""
    if record.get("finish_reason") == "length":
        return ""
    content = record.get("content") or ""
    if protocol == "as_recorded":
        return content
    return strip_reasoning(content)  # unclosed <think> -> ""


def write_samples(tasks: list[dict[str, Any]], n_repeats: int, final: dict[tuple[str, int], dict[str, Any]],
                  protocol: str, path: Path) -> dict[str, int]:
    counts = {"no_answer": 0, "sanitize_truncated": 0, "sanitize_errors": 0}
    lines = []
    for task in tasks:
        for r in range(n_repeats):
            text = protocol_text(final.get((task["task_id"], r)), protocol)
            if not text.strip():
                counts["no_answer"] += 1
            solution = _sanitize(text, task["entry_point"], counts)
            lines.append(json.dumps({"task_id": task["task_id"], "solution": solution}, ensure_ascii=False) + "\n")
    from harness.io import atomic_write_text

    atomic_write_text(path, "".join(lines))
    return counts


def score_results(results_file: Path, n_repeats: int) -> dict[str, Any]:
    """pass@k (base and base+plus) from evalplus 0.3.1 results, which do not store it themselves."""
    data = json.loads(results_file.read_text(encoding="utf-8"))["eval"]
    ks = sorted({1, n_repeats})
    out: dict[str, Any] = {"n_tasks": len(data)}
    for label, ok in (("base", lambda s: s["base_status"] == "pass"),
                      ("plus", lambda s: s["base_status"] == "pass" and s["plus_status"] == "pass")):
        per_task = [(len(rows), sum(1 for s in rows if ok(s))) for rows in data.values()]
        for k in ks:
            vals = [pass_at_k(n, c, k) for n, c in per_task if n >= k]
            out[f"{label}_pass@{k}"] = sum(vals) / len(vals) if vals else None
    return out


def run_humaneval(cfg: StudyConfig, model: str, proxy_url: str, out_dir: Path, bench: str,
                  on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Generate (resumable), sanitize and score one evalplus benchmark (`bench`, a registry key with
    runner evalplus) for one model; returns a small summary."""
    from harness.runners.evalplus_eval import evaluate_in_sandbox

    ep_dataset = evalplus_dataset(bench)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = cfg.benchmarks[bench]
    ds_path = dataset_file(cfg, bench)
    tasks = load_tasks(ds_path, spec.limit, bench=bench)
    seeds = cfg.repeat_seeds(model, bench)
    records_path = out_dir / "generations.jsonl"
    _terminate_torn_line(records_path)
    done = _completed(records_path)

    jobs = []
    for task in tasks:
        for r, seed in enumerate(seeds):
            body = build_body(cfg, model, task["prompt"], seed, bench)
            prev = done.get((task["task_id"], r))
            if prev is not None and prev.get("request_hash") == request_hash(body):
                continue
            jobs.append({"task_id": task["task_id"], "repeat": r, "seed": seed, "body": body})
    total = len(tasks) * len(seeds)
    wanted = {(t["task_id"], r) for t in tasks for r in range(len(seeds))}
    state = {"done": total - len(jobs),
             "tokens": sum(int((rec.get("usage") or {}).get("completion_tokens") or 0)
                           for key, rec in done.items() if key in wanted)}
    if on_progress:
        on_progress(state["done"], total, state["tokens"])

    def on_record(rec: dict[str, Any]) -> None:
        state["done"] += 1
        state["tokens"] += int((rec.get("usage") or {}).get("completion_tokens") or 0)
        if on_progress:
            on_progress(state["done"], total, state["tokens"])

    if jobs:
        log.info("%s/%s: %d of %d generations to request", model, bench, len(jobs), total)
        asyncio.run(_generate(cfg, model, proxy_url, jobs, records_path, on_record, bench))

    final = {k: v for k, v in _completed(records_path).items() if k in wanted}
    # Error records (all attempts failed) are kept in the file; the latest per key tells which.
    latest_err: dict[tuple[str, int], dict[str, Any]] = {}
    for rec in iter_jsonl(records_path):
        key = (rec.get("task_id"), int(rec.get("repeat", -1)))
        if key in wanted and key not in final:
            latest_err[key] = rec
    unanswered = sorted(wanted - set(final))
    if unanswered:
        # An error is never a wrong answer: score nothing, write no done.json; the rerun asks again.
        shown = ", ".join(f"{t}#{r}" for t, r in unanswered[:8]) + (" ..." if len(unanswered) > 8 else "")
        last = (latest_err.get(unanswered[0]) or {}).get("error") or {}
        raise IncompleteError(f"{len(unanswered)} of {len(wanted)} generations have no final answer "
                              f"({len(latest_err)} failed: last error {last.get('message', 'n/a')!r}): {shown}; "
                              f"rerun `harness eval` to request exactly these")
    gen_counts = {
        "generations": len(final),
        "errors": 0,
        "retried_then_answered": sum(1 for k, r in final.items() if (r.get("attempts") or 1) > 1),
        "finish_length": sum(1 for r in final.values() if r.get("finish_reason") == "length"),
        "content_null": sum(1 for r in final.values() if r.get("content") is None),
        "unclosed_think": sum(1 for r in final.values() if r.get("think_closed") is False),
        "completion_tokens": sum(int((r.get("usage") or {}).get("completion_tokens") or 0) for r in final.values()),
    }

    task_ids = {t["task_id"] for t in tasks}
    subset = None
    if spec.limit:
        subset = out_dir / ".dataset_subset.jsonl"
        from harness.io import atomic_write_text

        opener = gzip.open if str(ds_path).endswith(".gz") else open
        with opener(ds_path, "rt", encoding="utf-8") as fh:
            keep = [ln for ln in fh if ln.strip() and json.loads(ln)["task_id"] in task_ids]
        atomic_write_text(subset, "".join(ln if ln.endswith("\n") else ln + "\n" for ln in keep))

    protocols: dict[str, Any] = {}
    for protocol in PROTOCOLS:
        samples = out_dir / f"samples_{protocol}.jsonl"
        counts = write_samples(tasks, len(seeds), final, protocol, samples)
        info = evaluate_in_sandbox(samples, subset or ds_path, dataset=ep_dataset,
                                   allow_unisolated=cfg.sandbox.allow_unisolated)
        scores = score_results(Path(info["results"]), len(seeds))
        protocols[protocol] = {"samples": samples.name, "results": Path(info["results"]).name,
                               **counts, **scores, "sandbox": info["isolation"],
                               "eval_wall_s": info["wall_s"]}
    if subset is not None:
        subset.unlink(missing_ok=True)

    from harness.io import sha256_file

    summary = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": bench,
        "model": model,
        "finished": utc_now(),
        "items": len(tasks),
        "repeats": len(seeds),
        "dataset": {"path": str(ds_path), "sha256": sha256_file(ds_path), "n_tasks": len(tasks),
                    "limit": spec.limit},
        "samples_per_item": len(seeds),
        "seeds": seeds,
        "max_tokens": spec.max_tokens,
        "tool": {"evalplus": _evalplus_version(), "evalplus_dataset": ep_dataset, "find_zero_fix": True,
                 "max_sanitize_lines": MAX_SANITIZE_LINES},
        "counts": gen_counts,
        "protocols": protocols,
    }
    atomic_write_json(out_dir / "done.json", summary)
    return {"model": model, "benchmark": bench, "n_tasks": len(tasks), "samples_per_item": len(seeds),
            "counts": gen_counts,
            "pass@1": {p: protocols[p]["plus_pass@1"] for p in PROTOCOLS},
            "base_pass@1": {p: protocols[p]["base_pass@1"] for p in PROTOCOLS}}


def _evalplus_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evalplus")
    except PackageNotFoundError:
        return None
