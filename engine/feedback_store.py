"""One durable shard of the feedback log, plain Python (a Ray actor holds one per shard).

Layout: DIR/shard-<i>/requests.jsonl and events.jsonl, one record's `model_dump_json()`
per line, appended and fsync'ed before the call returns (durable before ack). Every
`SNAPSHOT_EVERY` lines the in-memory state (known requests, seen event ids, aggregates
(engine/feedback_stats.py), memory updates) is snapshotted with the offsets it covers
(engine/snapshot.py, written by a forked child so the shard keeps answering); on
construction the snapshot is loaded and only the files' tail past it is replayed (the whole files when there is no valid snapshot), so a restarted
actor loses nothing and does not re-read all of its history. A torn tail (crash mid-write) is truncated
away with a warning; a corrupt line inside a file is skipped with a warning.

An event's memory-update seq is its 1-based line number in events.jsonl (stable across
restarts, until an erasure rewrites the file and advances the shard's `epoch`: readers of
memory updates then start over). `erase_user` removes a user's requests and their events
from the files and the aggregates (engine/erasure.py). Requests are routed to shard `shard_of(request_id, n_shards)`.
"""
from __future__ import annotations

import bisect
import contextlib
import gc
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError

from core.events import EVENT_WEIGHTS
from core.records import EventRecord, RequestRecord
from engine import erasure, snapshot
from engine.erasure import EraseCounts
from engine.feedback_stats import FeedbackStats, FeedbackTotals, RequestInfo
from engine.history_feed import HistoryDelta, HistoryFeed
from rl.features import History

log = logging.getLogger(__name__)

REQUESTS, EVENTS = "requests.jsonl", "events.jsonl"
_EXPORT = re.compile(r"^(requests|events)-shard(\d+)\.parquet$")
MemoryUpdate = tuple[int, str, str, float]  # (seq, normalized query, item_id, weight)
_STATE = ("_requests", "_completed", "_event_ids", "_stats", "_updates", "_update_seqs")  # what a snapshot holds


class UnknownRequest(KeyError):
    """Feedback for a request id this shard never logged."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown request"


class BadEvent(ValueError):
    """An event that does not fit its request; the whole batch is rejected."""


class AddResult(BaseModel):
    """What one `add_events` call stored."""

    accepted: int = Field(description="new events stored durably")
    duplicates: int = Field(description="events skipped because their event_id was stored before")
    stored_total: int = Field(description="events the shard holds after this call")


class ExportCounts(BaseModel):
    """What one shard's `export` wrote."""

    shard: int
    requests: int
    events: int


def shard_of(request_id: str, n_shards: int) -> int:
    """Stable shard of a request id (crc32 of its UTF-8 bytes; the same in every process)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    return zlib.crc32(request_id.encode("utf-8")) % n_shards


def _scan(path: Path, model: type[BaseModel], limit: int | None = None, start: int = 0,
          start_line: int = 0) -> Iterator[tuple[int, BaseModel | None, int]]:
    """(line number, record or None when unparseable, end offset) per line, up to byte `limit`,
    from byte `start` (the beginning of line `start_line` + 1)."""
    offset = start
    with open(path, "rb") as f:
        f.seek(start)
        for lineno, raw in enumerate(f, start_line + 1):
            if limit is not None and offset >= limit:
                return
            offset += len(raw)
            rec = None
            if raw.endswith(b"\n"):  # a line without its newline is torn
                with contextlib.suppress(ValueError):
                    rec = model.model_validate_json(raw)
            yield lineno, rec, offset


def _coerce(obj: object, model: type[BaseModel], error: type[Exception]) -> BaseModel:
    if isinstance(obj, model):
        return obj
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise error(f"not a valid {model.__name__}: {exc}") from None


def _check_target(ev: EventRecord, info: RequestInfo, request_id: str) -> None:
    """An event names exactly one of an item and an entity, and the request showed it."""
    if (ev.item_id is None) == (ev.entity_id is None):
        raise BadEvent(f"event {ev.event_id!r} must name exactly one of item_id and entity_id")
    if ev.entity_id is not None:
        if ev.entity_id not in (info.entities or {}):
            raise BadEvent(f"event {ev.event_id!r}: entity {ev.entity_id!r} was not shown in request "
                           f"{request_id!r} (neither an entity card nor a related entity)")
    elif ev.item_id not in info.items:
        raise BadEvent(f"event {ev.event_id!r}: item {ev.item_id!r} was neither shown nor a "
                       f"candidate in request {request_id!r}")


class FeedbackShard:
    """Durable append-only request and event log of one shard, with its aggregates."""

    SNAPSHOT_EVERY = 100_000  # log lines appended between snapshots of the state

    def __init__(self, directory: Path, shard: int) -> None:
        if shard < 0:
            raise ValueError(f"shard must be >= 0, got {shard}")
        self.shard = shard
        self.path = Path(directory) / f"shard-{shard}"
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}
        self._snap_child: tuple[int, int] | None = None  # (pid, lines covered) of a snapshot being written
        if erasure.pending(self.path):  # the snapshot may hold what an interrupted erasure removes
            snapshot.remove(self.path)
        for user in erasure.resume_pending(self.path, REQUESTS, EVENTS):
            log.warning("feedback shard %d: finished an interrupted erasure (%d chars of user id)", shard, len(user))
        self._load()

    def _load(self) -> None:
        """(Re)build every in-memory structure from the files and open them for appending."""
        for fd in self._fds.values():
            os.close(fd)
        self.epoch = erasure.read_epoch(self.path)
        self._requests: dict[str, RequestInfo] = {}
        self._completed: set[str] = set()  # shadow requests whose off-path completion is logged
        self._event_ids: set[str] = set()
        self._stats = FeedbackStats()
        self._updates: list[MemoryUpdate] = []
        self._update_seqs: list[int] = []
        self._event_lines = 0  # line count of events.jsonl == the latest seq
        starts = {REQUESTS: (0, 0), EVENTS: (0, 0)}
        snap = snapshot.load(self.path, self.epoch)
        if snap is not None:
            for name, value in snap.state.items():
                setattr(self, name, value)
            starts = {name: (snap.offsets[name], snap.lines[name]) for name in starts}
        self._snap_lines = sum(lines for _, lines in starts.values())
        collecting = gc.isenabled()
        gc.disable()  # replay makes millions of objects and no cycles: the collector would only slow it down
        try:
            self._request_lines = self._replay(REQUESTS, RequestRecord, self._replay_request, *starts[REQUESTS])
            self._event_lines = self._replay(EVENTS, EventRecord, self._replay_event, *starts[EVENTS])
        finally:
            if collecting:
                gc.enable()
        self.replayed_lines = self._request_lines + self._event_lines - self._snap_lines  # for the logs and bench
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        self._fds = {name: os.open(self.path / name, flags, 0o644) for name in (REQUESTS, EVENTS)}
        self._feed = HistoryFeed()  # a new instance: every replica's history snapshot reloads this shard
        for d in (self.path, self.path.parent):  # make the new files' and dir's entries durable too
            erasure.fsync_dir(d)
        self._maybe_snapshot()

    def _maybe_snapshot(self) -> None:
        """Once SNAPSHOT_EVERY lines were added since the last snapshot, fork a child that writes a
        new one (engine/snapshot.py; caller holds the lock, or is the constructor)."""
        if self._snap_child is not None:
            pid, covered = self._snap_child
            ok = snapshot.done(pid)
            if ok is None:  # still writing
                return
            self._snap_child = None
            if ok:
                self._snap_lines = covered
            else:
                log.warning("feedback shard %d: the snapshot child failed; the next one retries", self.shard)
        if self._request_lines + self._event_lines - self._snap_lines < self.SNAPSHOT_EVERY:
            return
        offsets = {name: os.fstat(fd).st_size for name, fd in self._fds.items()}
        lines = {REQUESTS: self._request_lines, EVENTS: self._event_lines}
        pid = snapshot.take_in_background(self.path, self.epoch, offsets, lines,
                                          {name: getattr(self, name) for name in _STATE})
        self._snap_child = (pid, sum(lines.values()))

    def wait_for_snapshot(self) -> None:
        """Block until a snapshot being written is written (before an erasure, on close)."""
        if self._snap_child is not None:
            pid, covered = self._snap_child
            self._snap_child = None
            if snapshot.done(pid, block=True):
                self._snap_lines = covered

    def _replay(self, name: str, model: type[BaseModel], handle, start: int = 0, start_line: int = 0) -> int:
        """Feed every good line from byte `start` (line `start_line` + 1) to `handle(lineno, rec)`;
        truncate a torn tail. Returns the number of the last good line (== the line count after
        truncation)."""
        path = self.path / name
        if not path.exists():
            return start_line
        good_end, last_good, bad = start, start_line, []
        for lineno, rec, end in _scan(path, model, start=start, start_line=start_line):
            if rec is None:
                bad.append(lineno)
            else:
                good_end, last_good = end, lineno
                handle(lineno, rec)
        for lineno in (n for n in bad if n < last_good):
            log.warning("feedback shard %d: %s line %d is corrupt; skipped", self.shard, name, lineno)
        size = path.stat().st_size
        if size > good_end:
            log.warning("feedback shard %d: %s ends with %d bytes of torn or corrupt data (line %d on); "
                        "truncated", self.shard, name, size - good_end, last_good + 1)
            os.truncate(path, good_end)
        return last_good

    def _replay_request(self, lineno: int, rec: RequestRecord) -> None:
        if rec.request_id in self._requests:
            if rec.plan.shadow and rec.fetched and rec.request_id not in self._completed:
                self._completed.add(rec.request_id)  # the off-path shadow fetch's completion of this request
                return
            log.warning("feedback shard %d: request %r logged twice (line %d); kept the first",
                        self.shard, rec.request_id, lineno)
            return
        self._add_request(rec)

    def _replay_event(self, seq: int, ev: EventRecord) -> None:
        info = self._requests.get(ev.request_id)
        if info is None or ev.event_id in self._event_ids:
            log.warning("feedback shard %d: event %r (line %d) is a duplicate or its request is unknown; "
                        "skipped", self.shard, ev.event_id, seq)
            self._event_ids.add(ev.event_id)
            return
        self._add_event(seq, ev, info)

    # -- state --------------------------------------------------------------------
    def _add_request(self, rec: RequestRecord) -> None:
        info = RequestInfo.of(rec)
        self._requests[rec.request_id] = info
        self._stats.add_request(rec, info)

    def _add_event(self, seq: int, ev: EventRecord, info: RequestInfo) -> None:
        self._event_ids.add(ev.event_id)
        self._stats.add_event(ev, info)
        weight = EVENT_WEIGHTS.get(ev.type)
        # the memory strategy learns query -> item scores: from item events (an entity is no item it
        # could return), and never for an empty query (it rejects one)
        if weight is not None and info.query and ev.item_id is not None:
            self._updates.append((seq, info.query, ev.item_id, float(weight)))
            self._update_seqs.append(seq)

    def _append(self, name: str, data: bytes) -> None:
        """Append whole lines and fsync; on failure cut the file back so no partial line stays."""
        fd = self._fds[name]
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, start)
            raise

    # -- API ----------------------------------------------------------------------
    def log_request(self, rec: RequestRecord, json_text: str | None = None) -> None:
        """Append the request durably (fsync) before returning; a known request_id is ignored,
        except once for a shadow request's completion (`plan.shadow` and `fetched` set: the same
        request with what the off-path shadow fetch found). The completion adds no aggregates:
        what was served, and so what feedback can name, is the same in both records, and
        `read_export` keeps the completion in place of the first record. `json_text`, when the
        caller already has the record as JSON (it arrived so), is written as is: a record is
        serialized once on its way to disk."""
        self.log_requests([rec], None if json_text is None else [json_text])

    def log_requests(self, recs: Sequence[RequestRecord], json_texts: Sequence[str] | None = None) -> None:
        """`log_request` for several records with one write and one fsync (group commit): the
        service batches the log writes of concurrent requests. All or none: a record that is
        not a RequestRecord fails the call before anything is written."""
        recs = [_coerce(r, RequestRecord, ValueError) for r in recs]
        texts = list(json_texts) if json_texts is not None else [r.model_dump_json() for r in recs]
        if len(texts) != len(recs):
            raise ValueError(f"{len(recs)} records but {len(texts)} JSON texts")
        with self._lock:
            new, lines, seen = [], [], set()
            for rec, text in zip(recs, texts):
                rid = rec.request_id
                if rid in self._requests or rid in seen:
                    if rec.plan.shadow and rec.fetched and rid not in self._completed:
                        lines.append(text.encode("utf-8") + b"\n")
                        self._completed.add(rid)
                    continue
                seen.add(rid)
                lines.append(text.encode("utf-8") + b"\n")
                new.append(rec)
            if not lines:
                return
            self._append(REQUESTS, b"".join(lines))
            for rec in new:
                self._request_lines += 1
                self._add_request(rec)
                self._feed.touch(rec.user_id, self._requests[rec.request_id].query)
            self._maybe_snapshot()

    def add_events(self, request_id: str, events: Sequence[EventRecord]) -> AddResult:
        """Validate all events, then append the new ones with one fsync. Repeated event ids
        (stored before or earlier in the batch) are counted as duplicates and skipped."""
        evs = [_coerce(e, EventRecord, BadEvent) for e in events]
        with self._lock:
            info = self._requests.get(request_id)
            if info is None:
                raise UnknownRequest(f"request {request_id!r} was never logged in feedback shard {self.shard} "
                                     f"(log the request first, or route it with shard_of)")
            for ev in evs:
                if ev.request_id != request_id:
                    raise BadEvent(f"event {ev.event_id!r} is for request {ev.request_id!r}, not {request_id!r}")
                _check_target(ev, info, request_id)
                if ev.position < 1:
                    raise BadEvent(f"event {ev.event_id!r}: position must be >= 1, got {ev.position}")
            new, batch_ids = [], set()
            for ev in evs:
                if ev.event_id not in self._event_ids and ev.event_id not in batch_ids:
                    batch_ids.add(ev.event_id)
                    new.append(ev)
            if new:
                self._append(EVENTS, b"".join(ev.model_dump_json().encode("utf-8") + b"\n" for ev in new))
                for ev in new:
                    self._event_lines += 1
                    self._add_event(self._event_lines, ev, info)
                self._feed.touch(info.user_id, info.query)
                self._maybe_snapshot()
            return AddResult(accepted=len(new), duplicates=len(evs) - len(new), stored_total=self._stats.events)

    def has_request(self, request_id: str) -> bool:
        return request_id in self._requests  # a dict lookup is atomic under the GIL

    def memory_updates(self, since: int, limit: int = 10000) -> tuple[list[MemoryUpdate], int]:
        """Updates with seq > since (at most `limit`, in seq order) and the cursor to pass as
        `since` next time: the last returned seq if more remain, else the latest seq."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._lock:
            i = bisect.bisect_right(self._update_seqs, since)
            out = self._updates[i:i + limit]
            more = i + limit < len(self._updates)
            return out, (out[-1][0] if more else self._event_lines)

    def stats(self) -> FeedbackTotals:
        with self._lock:
            return self._stats.totals(self.shard, latest_seq=self._event_lines, memory_updates=len(self._updates))

    def counters(self) -> dict[str, dict[str, int]]:
        """Cheap running totals for metrics: events by type and hits by strategy."""
        with self._lock:
            return {"events_by_type": dict(self._stats.by_type), "hits": dict(self._stats.hits)}

    def strategy_stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return self._stats.strategy_stats()

    def user_history(self, user_id: str) -> dict:
        with self._lock:
            return self._stats.user_history(user_id)

    def context_history(self, user_id: str | None, query: str) -> History:
        with self._lock:
            return self._stats.context_history(user_id, query)

    def history_delta(self, instance: str | None, since: int) -> HistoryDelta:
        """The context history rows changed after `since` (engine/history_feed.py)."""
        with self._lock:
            return self._feed.delta(self._stats, instance, since)

    def erase_user(self, user_id: str) -> EraseCounts:
        """Remove every request of `user_id` and every event on them from this shard's files
        (crash-safe, see engine/erasure.py) and from its aggregates and memory updates; the
        epoch advances, so memory replicas rebuild without them."""
        with self._lock:
            erasure.record_pending(self.path, user_id)
            self.wait_for_snapshot()  # a child still writing one would put the user back
            snapshot.remove(self.path)  # it holds the user's data too
            for fd in self._fds.values():  # stop appending to the files about to be replaced
                os.close(fd)
            self._fds = {}
            try:
                n_requests, n_events = erasure.erase_user_files(self.path, REQUESTS, EVENTS, user_id)
                erasure.finish(self.path)
            finally:  # on failure the pending record stays, and the next start finishes the erasure
                self._load()
            return EraseCounts(shard=self.shard, requests=n_requests, events=n_events, epoch=self.epoch)

    # -- export -------------------------------------------------------------------
    def export(self, out_dir: Path) -> ExportCounts:
        """Write requests-shard<i>.parquet and events-shard<i>.parquet (column `json` holds each
        record's model_dump_json(); the events' item_id or entity_id, the other null) under out_dir,
        atomically; returns the counts."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self._lock:  # a consistent cut; the files are read outside the lock
            limits = {name: os.fstat(fd).st_size for name, fd in self._fds.items()}
        reqs = [r for _, r, _ in _scan(self.path / REQUESTS, RequestRecord, limits[REQUESTS]) if r is not None]
        evs = [e for _, e, _ in _scan(self.path / EVENTS, EventRecord, limits[EVENTS]) if e is not None]
        str_, f64 = pa.string(), pa.float64()
        tables = {"requests": pa.table({
            "json": pa.array([r.model_dump_json() for r in reqs], str_),
            "request_id": pa.array([r.request_id for r in reqs], str_), "ts": pa.array([r.ts for r in reqs], f64)}),
            "events": pa.table({"json": pa.array([e.model_dump_json() for e in evs], str_), **{
                col: pa.array([getattr(e, col) for e in evs], f64 if col == "ts" else str_)
                for col in ("event_id", "request_id", "ts", "type", "item_id", "entity_id")}})}
        for kind, table in tables.items():
            target = out / f"{kind}-shard{self.shard}.parquet"
            tmp = target.with_name(target.name + ".tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, target)
        return ExportCounts(shard=self.shard, requests=len(reqs), events=len(evs))

    def close(self) -> None:
        with self._lock:
            self.wait_for_snapshot()
            for fd in self._fds.values():
                os.close(fd)
            self._fds = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_export(directory: Path) -> tuple[list[RequestRecord], list[EventRecord]]:
    """All shards' exported records in `directory`, in shard order, then file order; a shadow
    request's off-path completion replaces its first record (one record per request_id)."""
    files: dict[str, list[tuple[int, Path]]] = {"requests": [], "events": []}
    for p in Path(directory).iterdir():  # FileNotFoundError for a missing directory
        m = _EXPORT.match(p.name)
        if m:
            files[m.group(1)].append((int(m.group(2)), p))

    def load(kind: str, model: type[BaseModel]) -> list:
        return [model.model_validate_json(s) for _, p in sorted(files[kind])
                for s in pq.read_table(p, columns=["json"]).column("json").to_pylist()]
    requests: dict[str, RequestRecord] = {}
    for r in load("requests", RequestRecord):
        if r.request_id not in requests or (r.fetched and not requests[r.request_id].fetched):
            requests[r.request_id] = r  # dict keeps the first record's position
    return list(requests.values()), load("events", EventRecord)
