"""Fault injection for load runs and tests: crash a Serve replica or a feedback actor.

A crash is a SIGKILL of the actor's worker process (`how="signal"`, the process must run
on this machine) or `ray.kill` (`how="ray"`, any node). Serve replaces a dead replica;
a feedback actor restarts itself (`max_restarts=-1`) and replays its files. Needs a
connected Ray driver (`ray.init(address="auto")`) and the Ray state API (the dashboard).
"""
from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass
from typing import Literal

import ray

from deployments.feedback import NAMESPACE, actor_name

How = Literal["signal", "ray"]


@dataclass(frozen=True)
class Actor:
    actor_id: str
    name: str
    pid: int
    node_id: str


@dataclass(frozen=True)
class Kill:
    """What was killed: `kind` is retriever, ranker or feedback; `target` the deployment or actor."""

    kind: str
    target: str
    actor: Actor
    how: How
    running_before: int = 1

    def to_json(self) -> dict:
        return {"kind": self.kind, "target": self.target, "how": self.how, "running_before": self.running_before,
                **asdict(self.actor)}


def alive(class_name: str | None = None, name: str | None = None) -> list[Actor]:
    """ALIVE actors with that class name (e.g. `ServeReplica:ltrr:ranker`) or actor name."""
    from ray.util.state import list_actors

    filters = [("state", "=", "ALIVE")]
    filters += [("class_name", "=", class_name)] if class_name else []
    filters += [("name", "=", name)] if name else []
    return [Actor(a.actor_id, a.name or "", int(a.pid or 0), a.node_id or "")
            for a in list_actors(filters=filters, limit=1000)]


def replica_class(deployment: str, app: str = "ltrr") -> str:
    return f"ServeReplica:{app}:{deployment}"


def _kill(actor: Actor, namespace: str, how: How, restart: bool) -> None:
    if how == "signal":
        if actor.pid <= 0:
            raise RuntimeError(f"actor {actor.name or actor.actor_id} has no pid yet")
        os.kill(actor.pid, signal.SIGKILL)
    else:
        ray.kill(ray.get_actor(actor.name, namespace=namespace), no_restart=not restart)


def kill_replica(deployment: str, kind: str, how: How = "signal", app: str = "ltrr") -> Kill:
    """Crash one running replica of a Serve deployment (Serve starts a replacement)."""
    replicas = alive(class_name=replica_class(deployment, app))
    if not replicas:
        raise RuntimeError(f"no running replica of {deployment}")
    victim = sorted(replicas, key=lambda a: a.actor_id)[0]
    _kill(victim, "serve", how, restart=False)
    return Kill(kind, deployment, victim, how, len(replicas))


def kill_feedback_actor(shard: int, how: How = "signal") -> Kill:
    """Crash one feedback actor (it restarts and rebuilds its state from its files)."""
    found = alive(name=actor_name(shard))
    if not found:
        raise RuntimeError(f"feedback actor {actor_name(shard)} is not running")
    _kill(found[0], NAMESPACE, how, restart=True)
    return Kill("feedback", actor_name(shard), found[0], how)


def replaced(kill: Kill) -> bool:
    """True once a replica other than the killed one runs (a new one, if the killed one was the
    only one), or the feedback actor runs again in a new process."""
    if kill.kind == "feedback":
        return any(a.pid != kill.actor.pid for a in alive(name=kill.target))
    others = [a for a in alive(class_name=replica_class(kill.target)) if a.actor_id != kill.actor.actor_id]
    return len(others) >= 1
