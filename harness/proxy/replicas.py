"""Replicas of one model behind the proxy: pick the least-loaded one, watch their health.

`--upstream NAME=URL` given several times makes several replicas of model NAME. Each request goes to
the healthy replica with the fewest requests in flight relative to its capacity (its llama-server
slots, read from `/slots` by the health check when the server exposes it; 1 otherwise), ties broken
by the free slots the server itself reported (other clients may be using it too), then by order.
A replica that refused or reset a connection is marked down at once, so the next request skips it;
the health check (`GET /health` every few seconds) brings it back when it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from harness.proxy.records import public_url

log = logging.getLogger("harness.proxy")

HEALTH_INTERVAL_S = 2.0
HEALTH_TIMEOUT_S = 2.0


@dataclass
class Replica:
    url: str  # base URL without a trailing slash
    public: str  # the URL as records show it (no credentials)
    healthy: bool = True  # optimistic until a check or a request says otherwise
    in_flight: int = 0
    capacity: int = 1  # slots, when the server tells us
    free_slots: int | None = None
    served: int = 0
    failures: int = 0

    def load(self) -> tuple[float, int]:
        free = self.free_slots if self.free_slots is not None else 0
        return self.in_flight / max(1, self.capacity), -free

    def as_json(self) -> dict[str, Any]:
        return {"url": self.public, "healthy": self.healthy, "in_flight": self.in_flight,
                "capacity": self.capacity, "free_slots": self.free_slots, "served": self.served,
                "failures": self.failures}


@dataclass
class ReplicaSet:
    name: str
    replicas: list[Replica] = field(default_factory=list)

    @classmethod
    def from_urls(cls, name: str, urls: list[str]) -> ReplicaSet:
        return cls(name, [Replica(u.rstrip("/"), public_url(u.rstrip("/"))) for u in urls])

    def pick(self, tried: set[int]) -> int | None:
        """Index of the replica for the next attempt: healthy ones first, then any untried one."""
        untried = [i for i in range(len(self.replicas)) if i not in tried]
        if not untried:
            return None
        healthy = [i for i in untried if self.replicas[i].healthy] or untried
        return min(healthy, key=lambda i: (*self.replicas[i].load(), i))

    def mark_down(self, i: int, why: str) -> None:
        r = self.replicas[i]
        r.failures += 1
        if r.healthy and len(self.replicas) > 1:
            log.warning("upstream %s replica %s marked down: %s", self.name, r.public, why)
        r.healthy = False


async def check(session: aiohttp.ClientSession, rep: Replica) -> None:
    """One health check: `/health` decides up or down; `/slots` (if exposed) gives capacity and load."""
    timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
    try:
        async with session.get(rep.url + "/health", timeout=timeout) as resp:
            await resp.read()
            # llama-server answers 503 while loading the model: not ready yet; a server without
            # /health (404) is still up
            up = resp.status < 500
    except (aiohttp.ClientError, OSError, TimeoutError):
        up = False
    if up and not rep.healthy:
        log.info("upstream replica %s is healthy again", rep.public)
    rep.healthy = up
    if not up:
        return
    try:
        async with session.get(rep.url + "/slots", timeout=timeout) as resp:
            slots = await resp.json(content_type=None) if resp.status == 200 else None
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        slots = None
    if isinstance(slots, list) and slots and all(isinstance(s, dict) for s in slots):
        rep.capacity = len(slots)
        rep.free_slots = sum(1 for s in slots if not s.get("is_processing"))


async def health_loop(session: aiohttp.ClientSession, sets: list[ReplicaSet],
                      interval_s: float = HEALTH_INTERVAL_S) -> None:
    """Check every replica of every model each interval, until cancelled."""
    reps = [r for s in sets for r in s.replicas]
    while True:
        await asyncio.gather(*(check(session, r) for r in reps))
        await asyncio.sleep(interval_s)
