# The two commands a fresh machine needs (see README.md):
#   make demo   install, build the embedded default's indexes, start the service (ltrr up), warm it up
#               with simulated users and one retraining job, query it
#   make test   install, lint (ruff, import layers), run every test tier (set LTRR_DATA=../shared/data
#               for the real-data tests); `make test-unit` runs the unit tier alone, in seconds
.PHONY: install demo eval down lint test test-unit clean

DATASET ?= builtin:music-demo
INDEX ?= indexes/music-demo
PORT ?= 8000
WARMUP ?= 1000

install:
	bash scripts/install.sh

# make demo: the service, then a short warm-up so the first screen shows learning: WARMUP simulated
# requests (searches, clicks, plays), then one retraining job (bandit and ranker, each gated) that
# hot-swaps what it promotes. WARMUP=0 skips the warm-up and the retraining.
demo: install
	.venv/bin/ltrr up --dataset $(DATASET) --index $(INDEX) --port $(PORT)
	.venv/bin/ltrr search "tayler love" --port $(PORT)
	@if [ "$(WARMUP)" -gt 0 ]; then \
	  .venv/bin/ltrr simulate --requests $(WARMUP) --dataset $(DATASET) --port $(PORT) && \
	  .venv/bin/ltrr retrain --what all --wait --port $(PORT) && \
	  .venv/bin/ltrr search "tayler love" --port $(PORT); fi
	@echo "ltrr is running on http://127.0.0.1:$(PORT): web console at /ui, OpenAPI at /docs; stop it with: make down"

eval: install
	.venv/bin/ltrr index --dataset $(DATASET) --out $(INDEX)
	.venv/bin/ltrr eval --index $(INDEX) --dataset $(DATASET) --split test --strategy all

down:
	.venv/bin/ltrr down

lint: install
	.venv/bin/ruff check .
	.venv/bin/lint-imports

test-unit: install
	.venv/bin/python -m pytest -q tests/unit

test: lint
	.venv/bin/python -m pytest -q tests/unit tests/integration tests/live

clean:
	rm -rf indexes state .pytest_cache
