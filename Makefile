# Two commands for a newcomer: `make run` (local stack) and `make test`.
# Both create .venv and install the pinned dependencies on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit functional e2e lock clean package docs soak

# The first install takes 1-3 minutes: it says so, then pip shows each package.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@echo "Installing the pinned dependencies into $(VENV) (first run: 1-3 minutes)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar off \
		-r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check --progress-bar off --no-deps -e .
	touch $(STAMP)
	@echo "Installed; $(VENV) is ready."

run: $(STAMP)
	$(PY) -m local

test: $(STAMP) lint typecheck
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

functional: $(STAMP)
	$(PY) -m pytest tests/functional

e2e: $(STAMP)
	$(PY) -m pytest tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Rewrite the generated tables in README.md and docs/local.md from the declarations
# (chalicelib/settings.py, local/flags.py); make test fails while one is stale.
docs: $(STAMP)
	$(PY) -m local.docs_tables

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# `chalice package` with the generated merge template into build/package-$(STAGE)/;
# prints the zip size. See docs/deploy.md. STAGE=prod for production.
STAGE ?= dev
package: $(STAMP)
	$(PY) -m infra.package --stage $(STAGE)

# Benchmarks on loopback (about 4 minutes, each bounded): tables on stdout,
# docs/benchmarks.md and docs/img/*.png from build/bench/*.json.
.PHONY: bench
bench: $(STAMP)
	$(PY) -m bench.run

# Soak on the real local stack with its faults on (bounded, loopback only; see
# docs/soak.md): `make soak SOAK_ARGS="--minutes 30"` for a longer one.
soak: $(STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)
