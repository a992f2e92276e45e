# Tastemaker — the two set-up commands are `make demo` and `make test`; both work on a fresh clone.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch for the optional [text] extra (MiniLM). On this project's machines the CPU build comes from
# local disk; elsewhere pass e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint typecheck bench install dev clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# core install: no torch
$(VENV)/.installed-core: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $@

# dev tools + the [text] extra (torch CPU build installed first, pinned)
$(VENV)/.installed-dev: $(VENV)/.installed-core
	$(BIN)/pip install -q $(TORCH_SPEC) 'setuptools<81'  # face-recognition-models needs pkg_resources
	$(BIN)/pip install -q -e '.[dev,text,eval,clip,diffusion,server,postgres,redis,ray,queue,milvus,curate]'
	@touch $@

install: $(VENV)/.installed-core
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed-core
	TASTEMAKER_PROGRESS=1 $(BIN)/tastemaker demo -o demo-output

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile

# ruff check is the style gate (its rules are in pyproject.toml); the tree is not run through ruff format
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench scripts

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/pip install -q --no-deps invisible-watermark==0.2.0
	@touch $@

bench: $(VENV)/.installed-bench
	@for b in engine profile_build memory taste privacy poisoning diffusion api_load watermark quality robustness web search discovery curate scale on_device products fairness clips; do \
		[ -f bench/$$b.py ] || continue; \
		echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; \
	done

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache .mypy_cache
