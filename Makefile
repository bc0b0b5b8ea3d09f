# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Browser tests drive Debian's chromium (never a browser download of a test tool's own).
CHROMIUM := /usr/bin/chromium
# GOST (Streebog, GOST R 34.11-94, the 34.10 curves' C path) comes from Debian's GOST provider.
GOSTPROV := /usr/lib/x86_64-linux-gnu/ossl-modules/gostprov.so

.PHONY: demo test lint bench bench-details clean gost

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) $(GOSTPROV)
	$(BIN)/egov-gateway demo

$(GOSTPROV):
	@echo "installing Debian's GOST provider (libengine-gost-openssl) for GOST signatures"
	@if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libengine-gost-openssl >/dev/null

gost: $(GOSTPROV)

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests"
	@if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

test: $(STAMP) $(CHROMIUM) $(GOSTPROV)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# One table, every figure measured in the same run (benchmarks/bench_summary.py); the details follow in bench-details.
bench: $(STAMP) $(GOSTPROV)
	$(BIN)/python benchmarks/bench_summary.py

bench-details: $(STAMP) $(GOSTPROV)
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_uploads.py
	$(BIN)/python benchmarks/bench_soak.py
	$(BIN)/python benchmarks/bench_revocation_shared.py
	$(BIN)/python benchmarks/bench_replica_acks.py
	$(BIN)/python benchmarks/bench_overload.py

clean:
	rm -rf $(VENV) .egov .pytest_cache .ruff_cache .mypy_cache *.egg-info
