"""The join keys between tool outputs and proxy records.

`request_hash` identifies one HTTP request body exactly (the proxy's cache key and the record's
join key). `prompt_key` identifies a generation by what determines it from the benchmark's point of
view (messages + seed), which is what a tool's sample file still knows after the fact: lm-eval
samples keep the messages but not the body it sent.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Body fields that cannot change the generation; excluded from the cache key so that, e.g., a
# client-side `stream` flag or a metadata tag does not defeat the response cache.
NON_GENERATIVE_FIELDS = frozenset({"stream", "stream_options", "user", "metadata"})


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_hash(body: Any) -> str:
    """sha256 of the canonical request body (minus fields that cannot change the generation)."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in NON_GENERATIVE_FIELDS}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def prompt_key(messages: Any, seed: Any) -> str:
    """Key of one generation as a sample file can reconstruct it: the chat messages and the seed."""
    return hashlib.sha256(canonical_json({"messages": messages, "seed": seed}).encode("utf-8")).hexdigest()
