# walletd: `make run` to start a local daemon, `make test` to run the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet
SOCKET := $(CURDIR)/.walletd/walletd.sock

.PHONY: install lock run test lint format generate bench bench-check bench-baseline fuzz soak clean

install: $(VENV)/.installed

# Installs come from the hashed lock files (requirements.lock: the daemon and clients;
# requirements-dev.lock: the same plus test and lint tools). `make lock` rewrites both from
# pyproject.toml's ranges; commit them together with the change that moved them.
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

lock: install
	$(BIN)/pip install --quiet --disable-pip-version-check 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --extra lint --extra mcp $(LOCK_FLAGS) -o requirements-dev.lock

run: install
	@echo "walletd: state and socket under ./.walletd/ (Ctrl-C stops it)."
	@echo "In another shell, try:"
	@echo "  $(BIN)/walletctl --socket $(SOCKET) create alice"
	@echo "  echo hello | $(BIN)/walletctl --socket $(SOCKET) sign alice"
	@echo "  (or: export WALLETD_SOCKET=$(SOCKET) and leave out --socket)"
	$(BIN)/walletd --log-format console

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/unasync.py --check

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# wallet_client/client.py is generated from wallet_client/aio.py; run after editing aio.py.
generate: install
	$(BIN)/python scripts/unasync.py

bench: install
	$(BIN)/python -m bench

# The regression gate: a short run (<= 60 s) of the headline ratios against bench/baseline.json.
# Timings never run under `make test`; run this before a release.
bench-check: install
	$(BIN)/python -m bench --check

# Rewrite bench/baseline.json from the same short run; commit it saying why the figure moved.
bench-baseline: install
	$(BIN)/python -m bench --write-baseline

fuzz: install
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,lint,fuzz]'
	WALLETD_FUZZ=long $(BIN)/python -m pytest -q -m fuzz tests
	$(BIN)/python -m tests.adversarial.atheris_frames

soak: install
	WALLETD_SOAK=long $(BIN)/python -m pytest -q -m soak tests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
