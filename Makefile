# Two commands for a newcomer: `make run` (local stack) and `make test`.
# Both create .venv and install the pinned dependencies on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit functional e2e js browser sdk lock clean package docs soak

# The first install takes 1-3 minutes: it says so, then pip shows each package.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@echo "Installing the pinned dependencies into $(VENV) (first run: 1-3 minutes)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar off \
		-r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check --progress-bar off --no-deps -e .
	touch $(STAMP)
	@echo "Installed; $(VENV) is ready."

# The console page (http://127.0.0.1:8080/_local/console/) loads the built JS SDK; the
# stack runs without it where there is no npm (the page then says how to build it).
run: $(STAMP)
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory sdk; \
	else echo "npm not found: the console page needs clients/js built (npm ci && npm run build)"; fi
	$(PY) -m local

sdk: $(JS_STAMP)
	cd $(JS) && npm run build --silent

# The JS SDK's tests (node's test runner, against the real local stack) run first: they
# also build clients/js/dist/, which the console page and tests/browser load.
test: $(STAMP) lint typecheck js
	$(PY) -m pytest

JS := clients/js
JS_STAMP := $(JS)/node_modules/.installed

$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund
	touch $(JS_STAMP)

js: $(STAMP) $(JS_STAMP)
	cd $(JS) && npm test

# The console page in headless Chromium (Debian's chromium: .ci/run installs it).
browser: $(STAMP) js
	$(PY) -m pytest tests/browser

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(JS)/node_modules $(JS)/dist

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
