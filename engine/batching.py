"""A micro-batcher for in-process callers: concurrent calls made within `wait_s` of each
other (at most `max_size`) are answered by one call of a batch function.

Why it exists beside Ray Serve's `@serve.batch`: the Serve deployments batch with Ray's
own decorator, but it needs a replica context, and the same strategies also run
in-process (the latency benchmark's baseline, the tests). This gives them the same
behaviour with no Ray: a call that finds others waiting goes with them; one alone waits
at most `wait_s`. The batch function returns one result per call, or the exception that
call alone raised (one bad query does not fail its batch mates). An async batch function
(returning an awaitable, e.g. a group-committed log write) may return None: every call of the
batch then resolves to None once it is done, or raises what it raised.
"""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(self, fn: Callable[[list[T]], Sequence[R | Exception]], max_size: int = 16,
                 wait_s: float = 0.001) -> None:
        self.fn = fn
        self.max_size = max_size
        self.wait_s = wait_s
        self._pending: list[tuple[T, asyncio.Future]] = []
        self._flush: asyncio.TimerHandle | None = None
        self.batches: list[int] = []  # sizes of the batches run (for benchmarks and tests)
        self._running: set[asyncio.Future] = set()  # async batches in flight (kept referenced)

    def __call__(self, item: T) -> Awaitable[R]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending.append((item, fut))
        if len(self._pending) >= self.max_size:
            self._run()
        elif self._flush is None:
            self._flush = loop.call_later(self.wait_s, self._run)
        return fut

    def _run(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        self.batches.append(len(batch))
        try:
            out = self.fn([item for item, _ in batch])
        except Exception as exc:  # the whole batch failed: every caller sees why
            _settle(batch, [exc] * len(batch))
            return
        if inspect.isawaitable(out):  # an async batch function (a remote write): settle when it is done
            task = asyncio.ensure_future(out)
            self._running.add(task)
            task.add_done_callback(lambda t: (self._running.discard(t), _settle_task(batch, t)))
        else:
            _settle(batch, out)


def _settle_task(batch: list, task: asyncio.Future) -> None:
    if task.cancelled():
        _settle(batch, [asyncio.CancelledError()] * len(batch))
    elif task.exception() is not None:
        _settle(batch, [task.exception()] * len(batch))
    else:
        _settle(batch, task.result())


def _settle(batch: list, results) -> None:
    results = list(results) if results is not None else [None] * len(batch)
    if len(results) != len(batch):
        results = [RuntimeError(f"batch function returned {len(results)} results for {len(batch)} calls")] * len(batch)
    for (_, fut), res in zip(batch, results):
        if fut.done():  # the caller gave up (timeout, cancel)
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)
