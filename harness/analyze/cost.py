"""Cost of answers per model x benchmark (issue 11): completion tokens and latency per generation,
and accuracy per 1,000 completion tokens.

Token counts and latencies come from the proxy record joined to each sample (or HumanEval+'s own
generation records); imported results without proxy logs have neither, so the characters of the
generation (reasoning + answer) are given too, always available, and the row says what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.benchmarks import registry


def _dist(values: Sequence[float], digits: int = 1) -> dict[str, Any] | None:
    if not values:
        return None
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "mean": round(float(a.mean()), digits), "median": round(float(np.median(a)), digits),
            "p90": round(float(np.percentile(a, 90)), digits)}


def cost_row(model: str, bench: str, bd: Any, proto: str) -> dict[str, Any]:
    """One model x benchmark: every generation of every repeat scored under `proto`."""
    outcomes: Mapping[int, Mapping[str, bool]] = bd.outcomes.get(proto, {})
    toks, lat, chars, ok_tok = [], [], [], []
    correct = scored = 0
    for rep, items in outcomes.items():
        gens = bd.gens.get(rep, {})
        for item, ok in items.items():
            scored += 1
            correct += bool(ok)
            g = gens.get(item)
            if g is None:
                continue
            chars.append(g.reasoning_chars + g.answer_chars)
            if isinstance(g.completion_tokens, (int, float)):
                toks.append(float(g.completion_tokens))
                ok_tok.append(bool(ok))
            if isinstance(g.latency_s, (int, float)):
                lat.append(float(g.latency_s))
    row: dict[str, Any] = {"model": model, "benchmark": bench, "protocol": proto, "generations": scored,
                           "accuracy": round(correct / scored, 4) if scored else None,
                           "completion_tokens": _dist(toks), "latency_s": _dist(lat, 2), "generation_chars": _dist(chars)}
    if toks:
        # correct answers per 1,000 completion tokens = accuracy / (mean tokens per generation / 1000),
        # over the generations whose token count is known
        row["correct_per_1k_tokens"] = round(1000 * sum(ok_tok) / sum(toks), 4) if sum(toks) else None
    else:
        row["correct_per_1k_tokens"] = None
        row["missing"] = "no completion-token counts (no proxy record or usage joined to these samples)"
    return row


def cost(data: Mapping[str, Mapping[str, Any]], primary: Mapping[str, str]) -> dict[str, Any]:
    """summary.cost: rows for every non-pooled benchmark and model."""
    rows = [cost_row(m, b, bd, primary[b]) for b, per in data.items() if registry().group(b) is None for m, bd in per.items()]
    return {"unit": "one generation (an item's sample)", "rows": rows}
