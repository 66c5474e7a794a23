# polycloud — every target installs what it needs into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -n 2  # two workers: the end-to-end tests mostly wait on processes

demo: install
	$(BIN)/polycloud demo --once

bench: install
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/apply_bench.py
	$(BIN)/python bench/gateway_bench.py

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
