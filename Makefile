# usdposer: `make demo` and `make test` work on a fresh clone (they create .venv and install everything first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export WARP_CACHE_PATH := $(CURDIR)/.cache/warp
OUT := out

.PHONY: demo test setup bench schemas lint clean default-model

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
	$(BIN)/usdposer sample $(OUT)/fox.usdc -n 16 --seed 0 -o $(OUT)/fox.samples.usdc --preview $(OUT)/fox_samples.png
	$(BIN)/usdposer ik $(OUT)/fox.usdc --from 12 --handle b_Head_05=-10,45,45 --frames 12 --keyframes 3 \
		-o $(OUT)/fox.ik.usdc --preview $(OUT)/fox_ik.png
	$(BIN)/usdposer render $(OUT)/fox.usdc --anim Walk --mode video --size 384x384 -o $(OUT)/fox_walk.gif
	@echo "open $(OUT)/fox.samples.usdc in a DCC (pose i at frame i) or look at $(OUT)/fox_samples.png;"
	@echo "$(OUT)/fox.ik.usdc lowers the Fox's head to a target along the pose manifold ($(OUT)/fox_ik.png)"

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/skinning.py
	$(BIN)/python bench/sampling.py
	$(BIN)/python bench/ik.py
	$(BIN)/python bench/inversion.py
	$(BIN)/python bench/check.py
	$(BIN)/python bench/skin.py
	$(BIN)/python bench/fit.py
	$(BIN)/python bench/distill.py
	$(BIN)/python bench/splat.py
	$(BIN)/python bench/track.py
	$(BIN)/python bench/render.py

# the shipped pose space (models/default): dataset from the shared data set, whole characters held out, ~30 min CPU
DEFAULT_DATA := data/default
default-model: setup
	$(BIN)/usdposer dataset build "../shared/data/**/*.glb" ../shared/data/khronos/SimpleSkin.gltf ../shared/data/bvh \
	  ../shared/data/mujoco/dog/dog.xml ../shared/data/mujoco/rodent/rodent.xml \
	  ../shared/data/kaykit/mannequin/manny_med_mod.gltf --anim-from "../shared/data/kaykit/anim/*.glb=manny_med_mod" \
	  --licence "quaternius/*=CC0-1.0 (Quaternius)" --licence "threejs/*=CC0-1.0 (Tomas Laulhe / Quaternius, edits by Don McCurdy)" \
	  --licence "khronos/CesiumMan*=CC-BY-4.0 (Cesium)" --licence "khronos/Rigged*=CC-BY-4.0 (Cesium)" \
	  --licence "khronos/SimpleSkin*=CC0-1.0 (Khronos glTF sample models)" \
	  --licence "bvh/*=CMU Graphics Lab Motion Capture Database: free for research and commercial use, not for resale" \
	  -o $(DEFAULT_DATA) --holdout animals/Wolf --holdout Velociraptor --holdout Spider --holdout Knight
	$(BIN)/usdposer train $(DEFAULT_DATA) -o models/default --steps 5000 --batch-size 128 --width 128 --depth 4 \
	  --val-every 500 --max-minutes 28 --seed 0
	$(BIN)/usdposer eval models/default $(DEFAULT_DATA) -n 256 --seeds 4 --card

# regenerate the committed schema plugin files from schemas/schema.usda (needs jinja2, a dev dependency)
schemas: setup
	$(BIN)/python -m pxr.Usd.usdGenSchema schemas/schema.usda schemas/usdPoser/resources
	sed -i 's/"@PLUG_INFO_ROOT@"/".."/; s/"@PLUG_INFO_RESOURCE_PATH@"/"resources"/; s/"@PLUG_INFO_LIBRARY_PATH@"/""/' schemas/usdPoser/resources/plugInfo.json

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
