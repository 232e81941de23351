"""A tiny BEIR-layout directory written by tests: eight documents, four judged queries, one of
them a whole argument of thousands of characters and over a thousand distinct words (as
ArguAna's queries are), which offline evaluation must answer rather than die on."""
from __future__ import annotations

import json
from pathlib import Path

DOCS = {
    "d1": ("Supersonic wing flutter", "Flutter of swept wings at supersonic speed in wind tunnel tests."),
    "d2": ("Boundary layer transition", "Laminar to turbulent transition of the boundary layer on flat plates."),
    "d3": ("Heat transfer in hypersonic flow", "Stagnation point heat transfer for blunt bodies at hypersonic speed."),
    "d4": ("Shock wave interaction", "Interaction of an oblique shock wave with a turbulent boundary layer."),
    "d5": ("Vaccine trial results", "A randomised trial of an influenza vaccine in elderly patients."),
    "d6": ("Gene expression in yeast", "Transcription factors regulate gene expression under stress in yeast."),
    "d7": ("Protein folding kinetics", "Folding rates of small proteins measured by stopped-flow experiments."),
    "d8": ("Panel flutter", "Aeroelastic panel flutter in supersonic flow and its suppression."),
}
LONG = ("Stagnation point heat transfer for blunt bodies at hypersonic speed matters because "
        + " ".join(f"argument{j} claim{j % 97}" for j in range(1200)))
QUERIES = {"q1": "supersonic flutter of wings", "q2": "turbulent boundary layer transition",
           "q3": "influenza vaccine trial", "q4": LONG}
QRELS = {"q1": {"d1": 2, "d8": 1}, "q2": {"d2": 2, "d4": 1}, "q3": {"d5": 1}, "q4": {"d3": 1}}


def write_beir(root: Path, docs: dict = DOCS) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as f:
        for i, (title, text) in docs.items():
            f.write(json.dumps({"_id": i, "title": title, "text": text, "metadata": {}}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for i, text in QUERIES.items():
            f.write(json.dumps({"_id": i, "text": text, "metadata": {}}) + "\n")
    with (root / "qrels" / "test.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, docs_ in QRELS.items():
            for d, g in docs_.items():
                f.write(f"{q}\t{d}\t{g}\n")
    return root
