# The two commands the README opens with: `make demo` and `make test`.
# Each creates .venv and installs the project on first use, so a fresh machine needs only
# Python 3.11, Java 17 and Maven (the tests fetch Kafka's jars with Maven once).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install trl-env demo test lint unit integration bench clean

# uv installs the packages (pip would resolve and unpack them one by one: 170 s instead of 45 s
# for the demo's set on this project's 2-core machine; docs/development.md).
$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv

# The demo needs the core and the export extra (the quality gate) only; the tests need every
# extra and the dev tools. The Python client (clients/python) is a distribution of its own that
# the core depends on (the simulator posts with it): it is installed from the checkout beside the
# project, editable too. Each stamp is remade when either pyproject.toml changes.
# --compile-bytecode: uv leaves the .pyc files to the first import, which never writes them where
# PYTHONDONTWRITEBYTECODE is set; every command and test process then compiled pandas, pyiceberg
# and the rest from source again (3 s more per process start, docs/development.md).
CLIENT := clients/python

$(VENV)/.demo-installed: pyproject.toml $(CLIENT)/pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e ./$(CLIENT) -e '.[export]'
	touch $@

$(VENV)/.installed: pyproject.toml $(CLIENT)/pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e ./$(CLIENT) -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

install: $(VENV)/.installed

# TRL and torch (several GB) in a virtual environment of their own under ~/.cache/flywheel, built
# once and reused by every checkout; the test that trains TRL on an exported dataset runs there.
trl-env:
	$(PYTHON) scripts/trl_env.py

demo: $(VENV)/.demo-installed
	$(BIN)/flywheel demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:randomly tests/test_layers.py

# The whole suite, as two pytest processes side by side. The second runs the Spark tests (one
# Spark application, minutes of mostly one-core query planning; marker `spark`), then the tests in
# SECOND_LANE: long ones that wait on subprocesses, a browser or Hypothesis more than they compute
# (schemathesis, the benchmarks' tiny runs, the console's and the tracker's browser tests, TRL,
# the demo, the erasure crash tests, the incremental property test), and the evaluation's and
# the review's tests, which build warehouses and fit models (measured: the first process took
# 32 minutes with them, the second 26).
# None of them uses the session's Kafka broker (tests/integration), which only the first process
# starts. The second process's report is printed after the first's; the target fails if either
# does. One after the other the suite took about 47 minutes on two cores; side by side, well
# under CI's 40.
SECOND_LANE := tests/api/test_schemathesis.py tests/bench tests/console tests/clients \
	tests/export/test_trl.py tests/export/test_erasure.py tests/flywheel/shell/test_demo.py \
	tests/flywheel/shell/test_rounds.py \
	tests/transforms/test_incremental.py tests/evaluate tests/review

test: lint trl-env
	@{ $(BIN)/pytest -m spark -p no:cacheprovider; spark=$$?; \
	   $(BIN)/pytest -m "not spark" -p no:cacheprovider $(SECOND_LANE); rest=$$?; \
	   test $$spark -eq 0 && test $$rest -eq 0; } > .spark-tests.log 2>&1 & second=$$!; \
	$(BIN)/pytest -m "not spark" $(addprefix --ignore=,$(SECOND_LANE)); main=$$?; \
	wait $$second; status=$$?; \
	echo "--- the second pytest process (pytest -m spark, then $(SECOND_LANE)) ---"; \
	cat .spark-tests.log; \
	test $$main -eq 0 && test $$status -eq 0

# The fast tests: no Kafka broker, no TRL environment, no Spark, nothing that takes more than a few seconds
# (the markers are in docs/development.md).
unit: install
	$(BIN)/pytest -m "not integration and not slow and not trl and not spark"

integration: install
	$(BIN)/pytest -m integration

# Every benchmark and one table of figures beside their limits (bench/results/latest.md);
# `make bench QUICK=1` runs smaller sizes.
bench: install
	$(BIN)/python -m bench.all $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .test-kafka .kafka-local .pytest_cache .mypy_cache .ruff_cache
