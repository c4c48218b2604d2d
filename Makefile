# gluekit: two commands.  `make demo` runs the main job, `make test` runs every test.
# Both create .venv and install the pinned dependencies on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
NBS := $(wildcard nbs/*.ipynb)

# Offline data cache: GLUEKIT_DATA wins; otherwise ../shared/data when it exists.
ifeq ($(strip $(GLUEKIT_DATA)),)
ifneq ($(wildcard ../shared/data/PROVENANCE.md),)
GLUEKIT_DATA := $(abspath ../shared/data)
endif
endif
ifneq ($(strip $(GLUEKIT_DATA)),)
export GLUEKIT_DATA
endif
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DATA ?= snare
OUT ?= reports/demo
WORKERS ?= 2

.PHONY: setup demo test check-clean check-export check-readme nbtest pytest readme export clean-venv test-gpu

setup: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name gluekit --display-name "Python (gluekit)" >/dev/null
	@touch $@

demo: setup
	$(BIN)/gluekit run snare_benchmark -p data $(DATA) --out $(OUT) --preset demo

# --- the test suite -------------------------------------------------------
test: setup check-clean check-export check-readme nbtest pytest
	@echo "make test: all stages passed"

check-clean:
	@before=$$(find nbs -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort | xargs md5sum); \
	$(BIN)/nbdev_clean; \
	after=$$(find nbs -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort | xargs md5sum); \
	if [ "$$before" != "$$after" ]; then echo "FAIL: nbdev_clean changed notebooks:"; diff <(echo "$$before") <(echo "$$after") || true; exit 1; fi; \
	echo "ok: notebooks are clean"

check-export:
	@before=$$(find gluekit -name '*.py' | sort | xargs md5sum); \
	$(BIN)/nbdev_export; \
	after=$$(find gluekit -name '*.py' | sort | xargs md5sum); \
	if [ "$$before" != "$$after" ]; then echo "FAIL: nbdev_export changed gluekit/ (it must equal what nbs/ exports):"; diff <(echo "$$before") <(echo "$$after") || true; exit 1; fi; \
	echo "ok: gluekit/ matches nbs/"

README_CMD = $(BIN)/jupyter nbconvert --to markdown --stdout --log-level=ERROR nbs/index.ipynb

readme: setup
	$(README_CMD) > README.md

check-readme:
	@$(README_CMD) > /tmp/gluekit-README.$$$$.md && \
	if ! cmp -s README.md /tmp/gluekit-README.$$$$.md; then echo "FAIL: README.md is stale: run 'make readme'"; diff README.md /tmp/gluekit-README.$$$$.md | head -20; rm -f /tmp/gluekit-README.$$$$.md; exit 1; fi; \
	rm -f /tmp/gluekit-README.$$$$.md; echo "ok: README.md is current"

nbtest:
	$(BIN)/nbdev_test --n_workers $(WORKERS) --timing

pytest:
	$(BIN)/pytest tests/ -q -p no:cacheprovider --durations=25

export: setup
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

# Full size on a GPU: the notebooks' slow/gpu cells, then every case study at its full-size defaults on CUDA.
test-gpu: setup
	$(BIN)/nbdev_test --flags "slow gpu" --n_workers 1
	$(BIN)/pytest tests/ -q -p no:cacheprovider --gpu --run-slow

clean-venv:
	rm -rf $(VENV)
