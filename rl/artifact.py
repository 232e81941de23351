"""The layout of a bandit artifact: `<bandit models>/<version>/meta.json` (strategies,
levels, feature names, training record) and `<version>/module/` (the RLModule's
checkpoint). `rl.train` writes it, `rl.bandit` loads it, and the serving policy finds
the newest one here without importing torch."""
from __future__ import annotations

from pathlib import Path

MODULE_DIR = "module"
META_FILE = "meta.json"


def latest_bandit(root: Path) -> str | None:
    """The newest complete bandit artifact under `root` (versions sort by time), or None."""
    versions = sorted(p.name for p in root.glob("*") if (p / META_FILE).is_file()) if root.is_dir() else []
    return versions[-1] if versions else None
