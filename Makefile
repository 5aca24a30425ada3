# make demo: set up, then run the main job on built-in sample data.
# make test: set up with the test extras, then run the whole test suite.
# make gpu-wheels (here, with PyPI) then make gpu-check (on a GPU machine): README, "GPU".
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= ndstack-demo
# The GPU machine's Python (3.12, with CuPy, NumPy, SciPy, scikit-image, xarray, pytest):
# what it lacks travels as wheels in .whl/, pinned here, each named (pip --no-deps).
GPU_PYTHON ?= python3
GPU_WHEELS := dask==2026.8.0 partd==1.4.2 locket==1.0.0
GPU_PLATFORMS := $(foreach p,manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 \
	manylinux1,--platform $(p)_x86_64)

.PHONY: demo test bench clean gpu-wheels gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[preview]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/ndstack demo --out $(DEMO_OUT)

test: $(VENV)/.installed-test
	@bash .ci/gui-deps.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	@if command -v xvfb-run >/dev/null 2>&1; then \
	  xvfb-run -a -s "-screen 0 1280x1024x24" $(BIN)/python -m pytest; \
	else $(BIN)/python -m pytest; fi

bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/open_read.py

gpu-wheels:
	rm -rf .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp $(GPU_PLATFORMS) -d .whl $(GPU_WHEELS)
	@ls .whl && du -sh .whl

gpu-check:
	GPU_PYTHON=$(GPU_PYTHON) bash bench/gpu_check.sh

clean:
	rm -rf $(VENV) $(DEMO_OUT) build src/*.egg-info .pytest_cache
