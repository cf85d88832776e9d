# usdposer: `make demo` and `make test` work on a fresh clone (they create .venv and install everything first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export WARP_CACHE_PATH := $(CURDIR)/.cache/warp
OUT := out

.PHONY: demo test setup bench schemas lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU build on these machines, pinned; the project's own requirement stays a range
	$(BIN)/pip install -q torch==2.13.0

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	mkdir -p $(OUT)
	$(BIN)/usdposer import assets/khronos/Fox.glb -o $(OUT)/fox.usdc
	$(BIN)/usdposer info $(OUT)/fox.usdc --no-tree

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/skinning.py

# regenerate the committed schema plugin files from schemas/schema.usda (needs jinja2, a dev dependency)
schemas: setup
	$(BIN)/python -m pxr.Usd.usdGenSchema schemas/schema.usda schemas/usdPoser/resources
	sed -i 's/"@PLUG_INFO_ROOT@"/".."/; s/"@PLUG_INFO_RESOURCE_PATH@"/"resources"/; s/"@PLUG_INFO_LIBRARY_PATH@"/""/' schemas/usdPoser/resources/plugInfo.json

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
