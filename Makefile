# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_CUSTOMERS ?= 2000
BENCH_SIZES ?= 10000,100000,1000000

.PHONY: demo test system-deps lint typecheck pytest lock clean bench bench-incremental

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "kizuna needs Python 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# The demo delivers to the local outbox at any hour and on holidays; scheduled runs keep the send window.
demo: $(STAMP)
	$(BIN)/kizuna demo-data --customers $(DEMO_CUSTOMERS) --seed 42 --out var/demo-data
	KIZUNA_SEND_WINDOW=00:00-24:00 KIZUNA_SEND_ON_BUSINESS_DAYS_ONLY=false \
	  $(BIN)/kizuna run --source-dir var/demo-data

test: system-deps $(STAMP) lint typecheck pytest

# Debian packages the tests use: a real PostgreSQL server (the dbt portability test starts its own),
# a Java runtime for the local Spark session of the Spark portability test (pyspark runs on Java 17),
# Chromium for the browser tests (Playwright drives it; it never downloads a browser) and a font with
# Japanese glyphs for the report's charts. Installed only when missing and running as root; otherwise
# the tests that need them say why they skip.
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (not root: the tests that need them will skip)"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src flows tests bench
	$(BIN)/ruff format --check src flows tests bench
	$(BIN)/lint-imports --no-cache
	cd dbt_project && KIZUNA_WAREHOUSE=:memory: ../$(BIN)/sqlfluff lint models tests macros

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

# The whole pipeline's cost from 10k to 1M customers next to the references (≈ 40 min on 2 quiet cores); writes
# bench/results/latest.json and the block at the top of docs/benchmarks.md. Not part of `make test`: timing tests
# flake on shared machines (tests/bench/ runs a tiny smoke of the harness instead).
bench: $(STAMP)
	$(BIN)/python bench/run.py --sizes $(BENCH_SIZES)

# Day 2's dbt build, incremental against a full refresh, side by side (docs/incremental.md); 1000000 is a size too.
BENCH_INCREMENTAL_SIZES ?= 10000 100000
bench-incremental: $(STAMP)
	$(BIN)/python bench/incremental/bench_incremental.py --customers $(BENCH_INCREMENTAL_SIZES) --rounds 2

# Re-resolve the locked versions after changing dependencies in pyproject.toml.
lock:
	rm -rf /tmp/kizuna-lock && $(PYTHON) -m venv /tmp/kizuna-lock
	/tmp/kizuna-lock/bin/pip install --quiet -e ".[dev]"
	/tmp/kizuna-lock/bin/pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf var $(VENV)
