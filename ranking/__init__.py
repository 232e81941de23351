"""The learning-to-rank stage: XGBoost LambdaMART over the union of the strategies' candidates.

- `ranking.features`: `union` (merge lists, keep provenance), `FEATURE_NAMES`, `featurize`.
- `ranking.model`: versioned JSON artifacts, `RankerModel`, `FallbackRanker`, `rank`.
- `ranking.train`: training from qrels (offline judgments) or from logged clicks.

Modules are imported explicitly (`from ranking.model import RankerModel`), so importing
the package costs nothing.
"""
