"""Safe, atomic JSON files for strategy indexes (never pickle: an index directory may
come from elsewhere, and JSON cannot run code when read).

Each strategy directory holds its data files and a `manifest.json`, written last, that
names the strategy, its file format and the catalogue fingerprint. A directory without
a manifest is an interrupted build.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from core.errors import IndexError_


def write_json(path: Path, obj: object) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    """Read a JSON index file; IndexError_ that says to rebuild when it is missing or broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexError_(f"{path.parent.name} index is incomplete: {path} is missing; rebuild it") from None
    except (OSError, ValueError) as exc:
        raise IndexError_(f"{path.parent.name} index file {path} is unreadable ({exc}); rebuild it") from None


def write_manifest(out: Path, strategy: str, fmt: int, fingerprint: str, **extra: object) -> None:
    write_json(out / "manifest.json", {"strategy": strategy, "format": fmt, "fingerprint": fingerprint, **extra})


def read_manifest(out: Path, strategy: str, fmt: int) -> dict:
    """The strategy manifest in `out`, checked to be this strategy's, in this format."""
    if not out.is_dir():
        raise IndexError_(f"no {strategy} index at {out} (run `ltrr index` first)")
    manifest = read_json(out / "manifest.json")
    if manifest.get("strategy") != strategy or manifest.get("format") != fmt:
        raise IndexError_(f"{out} holds a {manifest.get('strategy')!r} index (format {manifest.get('format')}), "
                          f"not a {strategy} index of format {fmt}")
    return manifest
