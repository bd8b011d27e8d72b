# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_CUSTOMERS ?= 2000

.PHONY: demo test lint typecheck pytest lock clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "kizuna needs Python 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kizuna demo-data --customers $(DEMO_CUSTOMERS) --seed 42 --out var/demo-data
	$(BIN)/kizuna run --source-dir var/demo-data

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src flows tests bench
	$(BIN)/ruff format --check src flows tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

# Re-resolve the locked versions after changing dependencies in pyproject.toml.
lock:
	rm -rf /tmp/kizuna-lock && $(PYTHON) -m venv /tmp/kizuna-lock
	/tmp/kizuna-lock/bin/pip install --quiet -e ".[dev]"
	/tmp/kizuna-lock/bin/pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf var $(VENV)
