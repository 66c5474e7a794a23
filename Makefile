# polycloud — every target installs what it needs into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser test security demo bench lint clean

RUNTIME := $(VENV)/.installed-runtime
# uv installs the same packages as pip from the same index several times faster (the runtime's
# dependencies: 20 s against pip's 94 s from a fresh clone on the 2-core machine, docs/benchmarks.md);
# where uv cannot be had, pip does it. Bytecode is compiled at install (pip's default, not uv's), and
# polycloud's own too: where PYTHONDONTWRITEBYTECODE is set, as on this workplace's machines, every
# process would otherwise compile every module it imports, every time it starts.
UV_INSTALL = $(BIN)/python -m pip install -q uv >/dev/null 2>&1 && $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python
PIP_INSTALL = $(BIN)/python -m pip install -q
COMPILE_SRC = $(BIN)/python -m compileall -q -j 0 src >/dev/null

install: $(STAMP)

# Tests, lint and benchmarks need the dev extras; the demo needs only what polycloud itself runs on.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(UV_INSTALL) -e '.[dev]' || $(PIP_INSTALL) -e '.[dev]'
	$(COMPILE_SRC)
	touch $(STAMP) $(RUNTIME)

$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(UV_INSTALL) -e . || $(PIP_INSTALL) -e .
	$(COMPILE_SRC)
	touch $(RUNTIME)

# The dashboard's browser tests drive Debian's Chromium (never a browser Playwright downloads). Missing, it
# is installed here; when that fails, stop with the reason: the browser tests must never be skipped.
CHROMIUM := /usr/bin/chromium

browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the dashboard's browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	  else echo "ERROR: $(CHROMIUM) is missing and installing it needs root (apt-get install -y chromium)" >&2; exit 1; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	    || { $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
	    || { echo "ERROR: could not install chromium with apt-get; the dashboard's browser tests need $(CHROMIUM)" >&2; exit 1; }; \
	}
	@test -x $(CHROMIUM) || { echo "ERROR: $(CHROMIUM) is still missing after apt-get install chromium" >&2; exit 1; }

test: install browser
	$(BIN)/python -m pytest -n 4 --dist worksteal  # four workers on two cores: the end-to-end tests mostly wait on processes (docs/benchmarks.md, "The test suite")

# The probe of docs/security.md: schemathesis over a live API, a fuzz of the replica's and the gateway's
# request parsers, the secret-leak and permission checks. Deselected from `make test` (marker `security`).
security: install
	$(BIN)/python -m pytest -m security -n 2 --dist loadfile tests/security

demo: $(RUNTIME)
	$(BIN)/polycloud demo --once

bench: install browser
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/apply_bench.py
	$(BIN)/python bench/gateway_bench.py
	$(BIN)/python bench/dashboard_bench.py
	$(BIN)/python bench/cli_bench.py
	$(BIN)/python bench/spec_bench.py
	$(BIN)/python bench/llm_bench.py
	$(BIN)/python bench/llm_keys_bench.py
	$(BIN)/python bench/flags_bench.py

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	@# pip-audit needs the vulnerability database (pypi.org or osv.dev); without it, say so and go on.
	@$(BIN)/pip-audit --progress-spinner off --skip-editable --strict >$(VENV)/pip-audit.log 2>&1; rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "pip-audit: no known vulnerabilities"; \
	elif grep -qE 'not found on PyPI|ConnectionError|Name or service not known|Max retries' $(VENV)/pip-audit.log; then \
	  echo "pip-audit: SKIPPED, the vulnerability database is unreachable from here (see $(VENV)/pip-audit.log)"; \
	else cat $(VENV)/pip-audit.log; exit $$rc; fi

clean:
	rm -rf $(VENV) .polycloud .mypy_cache .ruff_cache .pytest_cache
