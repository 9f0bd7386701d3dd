# Two entry points: `make demo` and `make test`. Both create .venv on first use,
# install the torch pin first (the CPU wheel on this machine; a bare `torch` would
# pull a multi-GB CUDA build), then the package with its dev extra.
# Later runs reinstall only when pyproject.toml or the torch pin changed.

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# glibc's default malloc hands large freed blocks back to the OS, and a training
# loop then page-faults its buffers in again every step: reported up to 2.8x on
# PyTorch CPU training on this machine type. For the xLSTM stack we measure
# 1.01-1.04x (benchmarks/results/malloc-cpu.md); kept as a cheap safeguard.
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824

ifneq ($(shell cat $(STAMP) 2>/dev/null),$(TORCH))
.PHONY: $(STAMP)
endif

.PHONY: test demo lint mutation notebooks bench-cells bench-malloc clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	echo "$(TORCH)" > $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

test: $(STAMP) lint
	$(BIN)/python -m pytest -q --durations=15

demo: $(STAMP)
	$(BIN)/python -m xlstm_ts.demo

# Run every notebook top to bottom at full settings in a Jupyter kernel and save it
# with its outputs (a few minutes on 2 cores); make test runs them fast, unsaved.
notebooks: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[notebooks]"
	$(BIN)/python notebooks/run_notebooks.py

# Mutation testing: mutmut over [tool.mutmut] in pyproject.toml, then a report in
# benchmarks/results/mutation.md ending in "mutation score: K killed of M". All 15
# modules take hours on 2 cores (the training modules' tests fit networks); stopped
# early, `mutmut run` resumes and `python benchmarks/mutation.py` reports the checked.
mutation: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[mutation]"
	rm -rf mutants
	OMP_NUM_THREADS=1 HYPOTHESIS_PROFILE=mutation $(BIN)/mutmut run --max-children 2 || true
	$(BIN)/python benchmarks/mutation.py

bench-cells: $(STAMP)
	$(BIN)/python benchmarks/cells.py

bench-malloc: $(STAMP)
	$(BIN)/python benchmarks/malloc.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
