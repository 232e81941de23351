"""The console's server side (deployments/console.py): its assets and the /promotions record."""
from __future__ import annotations

import json

from core.paths import StatePaths
from deployments.console import ASSETS, UI_DIR, promotions
from learning.registry import record_promotion


def test_assets_are_plain_files_that_fetch_nothing_from_elsewhere():
    html = (UI_DIR / "index.html").read_text()
    for name in ASSETS:
        assert f"/ui/{name}" in html and (UI_DIR / name).is_file()
    for f in UI_DIR.iterdir():
        text = f.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, f
        assert "innerHTML" not in text, f  # API values are inserted as text


def test_promotions_lists_gate_records_newest_first(tmp_path):
    paths = StatePaths(tmp_path)
    assert promotions(str(tmp_path)) == {"bandit_gates": [], "history": {"ranker": [], "bandit": []}}
    for v, promoted in (("bandit-20261201-000000", False), ("bandit-20261202-000000", True)):
        d = paths.bandit_models / v
        d.mkdir(parents=True)
        (d / "promotion.json").write_text(json.dumps({"version": v, "serving_version": "fixed", "promoted": promoted,
                                                      "ope": {"estimator": "dr", "promote": promoted}}))
    record_promotion(paths, "bandit", "bandit-20261202-000000", "fixed", "retrain")
    got = promotions(str(tmp_path))
    assert [g["version"] for g in got["bandit_gates"]] == ["bandit-20261202-000000", "bandit-20261201-000000"]
    assert got["bandit_gates"][0]["promoted"] and got["history"]["bandit"][0]["previous"] == "fixed"
