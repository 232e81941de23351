# The two commands a fresh machine needs (see README.md):
#   make demo   install, build every index of the embedded default (builtin:music-demo), evaluate
#   make test   install, run the test suite (set LTRR_DATA=../shared/data for the real-data tests)
.PHONY: install demo test clean

DATASET ?= builtin:music-demo
INDEX ?= indexes/music-demo

install:
	bash scripts/install.sh

demo: install
	.venv/bin/ltrr index --dataset $(DATASET) --out $(INDEX)
	.venv/bin/ltrr eval --index $(INDEX) --dataset $(DATASET) --split test --strategy all

test: install
	.venv/bin/python -m pytest -q tests

clean:
	rm -rf indexes .pytest_cache
