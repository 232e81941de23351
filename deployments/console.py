"""The web console at /ui: static HTML, CSS and JS served by the orchestrator itself.

No build step and nothing fetched at run time: the three files in `deployments/ui/` are
plain HTML, CSS and JavaScript that call the app's own HTTP API (/search, /feedback,
/stats, /strategies, /promotions, /admin/*). `GET /promotions` is the console's view of
the learning loop: the bandit artifacts' OPE gate records (`promotion.json`, newest
first) and both kinds' promotion histories.
"""
from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from core.paths import MODEL_KINDS, StatePaths
from learning.registry import history

UI_DIR = Path(__file__).resolve().parent / "ui"
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
MAX_PROMOTIONS = 10

router = APIRouter()


@router.get("/ui", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", media_type="text/html")


@router.get("/ui/", include_in_schema=False)
async def console_slash() -> RedirectResponse:
    return RedirectResponse("/ui")


@router.get("/ui/{name}", include_in_schema=False)
async def console_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"no console asset {name!r}")
    return FileResponse(UI_DIR / name, media_type=ASSETS[name])


def promotions(state_dir: str) -> dict:
    """The newest bandit OPE records and every kind's promotion history (newest first)."""
    paths = StatePaths(state_dir)
    gates = []
    root = paths.bandit_models
    if root.is_dir():
        for f in sorted(root.glob("*/promotion.json"), reverse=True)[:MAX_PROMOTIONS]:
            try:
                row = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            gates.append({k: row.get(k) for k in ("version", "serving_version", "promoted", "ope",
                                                   "trained_on_shadow_requests")})
    return {"bandit_gates": gates,
            "history": {k: list(reversed(history(paths, k)))[:MAX_PROMOTIONS] for k in MODEL_KINDS}}
