# The two commands a fresh machine needs (see README.md):
#   make demo   install, build the embedded default's indexes, start the service (ltrr up), query it
#   make test   install, lint (ruff, import layers), run every test tier (set LTRR_DATA=../shared/data
#               for the real-data tests); `make test-unit` runs the unit tier alone, in seconds
.PHONY: install demo eval down lint test test-unit clean

DATASET ?= builtin:music-demo
INDEX ?= indexes/music-demo
PORT ?= 8000

install:
	bash scripts/install.sh

demo: install
	.venv/bin/ltrr up --dataset $(DATASET) --index $(INDEX) --port $(PORT)
	curl -s -X POST http://127.0.0.1:$(PORT)/search -H 'content-type: application/json' \
	  -d '{"query": "chill jazz", "k": 3}' | .venv/bin/python -m json.tool
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
