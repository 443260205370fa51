"""Progress lines come from the proxy log: only new, successful generations of the right benchmark."""

from __future__ import annotations

import io
import json
from pathlib import Path

from harness.progress import ProgressMonitor


def _rec(model: str, bench: str, tokens: int, status: int = 200, cache_hit: bool = False) -> str:
    return json.dumps({"model": model, "benchmark": bench, "path": "/v1/chat/completions", "status": status,
                       "cache_hit": cache_hit, "usage": {"completion_tokens": tokens}}) + "\n"


def test_counts_new_generations_per_model_and_benchmark(tmp_path: Path) -> None:
    log = tmp_path / "m.jsonl"
    log.write_text(_rec("m", "aime24", 50))  # from an earlier eval: not counted
    out = io.StringIO()
    monitor = ProgressMonitor(tmp_path, {("m", "aime24"): 3, ("m", "ifeval"): 2}, out=out, interval_s=60)
    monitor.start()
    monitor.mark_started("m", "aime24")
    with open(log, "a") as fh:
        fh.write(_rec("m", "aime24", 10) + _rec("m", "aime24", 10, status=502) + _rec("m", "aime24", 7, cache_hit=True))
        fh.write('{"model": "m", "benchmark": "aime24", "pa')  # a line still being written
    monitor.stop()
    counter = monitor.counters[("m", "aime24")]
    assert counter.done == 2 and counter.upstream_tokens == 10  # cache hits count as done, not as tokens
    assert monitor.counters[("m", "ifeval")].done == 0
    text = out.getvalue()
    assert "m/aime24" in text and "2/3" in text and "m/ifeval" in text and "waiting" in text
