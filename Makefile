# Two commands on a fresh clone: `make demo` and `make test`. Each bootstraps .venv from python3
# (idempotent: the install step reruns only when pyproject.toml or requirements.lock change).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEED ?= 2000
export MPLBACKEND := Agg

# (lint: the layer contracts, ruff lint and ruff format check; CI runs it before the tests)
.PHONY: demo test lint bench crash fuzz clean-data venv postgres postgres-stop redis redis-stop queue-server
.PHONY: docs matrix faults

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || \
	  (echo "python3 -m venv failed; installing python3-venv with apt" && \
	   apt-get update -q && apt-get install -y -q python3-venv && $(PY) -m venv $(VENV))
# python-seabreeze's SeaBreezeAPI needs a pyusb backend (libusb) even for an HDX on Ethernet (docs/raman.md)
	@ldconfig -p 2>/dev/null | grep -q libusb-1.0 || \
	  (echo "libusb-1.0 missing; installing Debian's libusb-1.0-0 with apt" && \
	   apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libusb-1.0-0)
	$(BIN)/python -m pip install -q --upgrade "pip==26.3" 2>/dev/null || true
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[test]"
	@git rev-parse --git-dir >/dev/null 2>&1 && git config core.hooksPath .githooks || true  # lint before each commit
	@touch $(STAMP)

# The run, then its report: one self-contained HTML file (metadata, cycling, analyses, figures)
demo: $(STAMP)
	$(BIN)/operando run galvanostatic_cycling --profile sim --speed $(SPEED) --data data
	@echo "Report (open it in a browser):"
	@$(BIN)/operando report -1 --data data

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every benchmark, each printing its rates and ratios against baselines measured in the same
# run; a missed goal is reported and the next benchmark still runs (`-`).
bench: $(STAMP)
	-$(BIN)/python -m operando.benchmarks
	-$(BIN)/python -m operando.benchmarks.orchestration
	-$(BIN)/python -m operando.benchmarks.sim_lab
	-$(BIN)/python -m operando.benchmarks.storage_replay
	-$(BIN)/python -m operando.benchmarks.methodscript
	-$(BIN)/python -m operando.benchmarks.raman_frame
	-QT_QPA_PLATFORM=offscreen $(BIN)/python -m operando.benchmarks.gui
	-$(BIN)/python -m operando.benchmarks.storage_growth
	-$(BIN)/python -m operando.benchmarks.soak
	-$(BIN)/python -m operando.benchmarks.multichannel_load

# The documentation site (docs/, mkdocs.yml) into site/; strict: a broken link or anchor, or a
# page missing from the nav, fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --clean
	@echo "Site built in site/ (open site/index.html)"

# SIGKILL 20 real-time runs at chosen moments (exposure, map, hold, EIS, pause, suspension,
# random), recover each, print the echem each lost against the simulator's record and the worst.
crash: $(STAMP)
	$(BIN)/python -m operando.benchmarks.crash_matrix --kills 20 --parallel 4
	OPERANDO_FULL_MATRIX=1 $(BIN)/python -m pytest tests/test_journal_rotation.py

# Every parser fuzzed with hypothesis (benchmarks/fuzz.py), FUZZ_EXAMPLES per target, a target per
# core at a time: prints the table (target, examples, failures, seconds) and writes it, dated, to
# docs/fuzz.md. Fails if any target found a failure (its input is printed). CI runs 200 each.
FUZZ_EXAMPLES ?= 100000
fuzz: $(STAMP)
	$(BIN)/python -m operando.benchmarks.fuzz --examples $(FUZZ_EXAMPLES) --markdown docs/fuzz.md

# Every wire-level simulator x every wire fault x every moment (benchmarks/fault_matrix.py): 168
# real runs, FAULTS_PARALLEL at a time; prints each cell and writes the dated table to
# docs/fault-matrix.md. Fails if a cell is unsafe and not explained (make test runs 12 cells).
FAULTS_PARALLEL ?= 2
faults: $(STAMP)
	$(BIN)/python -m operando.benchmarks.fault_matrix --parallel $(FAULTS_PARALLEL) --markdown docs/fault-matrix.md

# Every shipped protocol on every shipped profile, run to the end (make test runs a sample); hours.
matrix: $(STAMP)
	OPERANDO_FULL_MATRIX=1 $(BIN)/python -m pytest tests/test_every_protocol.py

clean-data:
	rm -rf data

# A PostgreSQL server on loopback for development and the storage tests (CI runs this too):
# installs Debian's postgresql if no server binaries exist, initialises a cluster in $(PG_DIR)
# (trust authentication, listening on 127.0.0.1 only) and starts it. Then:
#   export OPERANDO_TEST_POSTGRES_URI=$(PG_URI)
PG_PORT ?= 55432
PG_DIR ?= /tmp/operando-postgres
PG_URI := postgresql://operando@127.0.0.1:$(PG_PORT)/postgres
PG_AS = $$(if [ "$$(id -u)" = 0 ]; then echo "runuser -u postgres --"; fi)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql)
	@PGBIN=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); \
	if $$PGBIN/pg_isready -q -h 127.0.0.1 -p $(PG_PORT); then echo "PostgreSQL already up"; else \
	  mkdir -p $(PG_DIR) && if [ "$$(id -u)" = 0 ]; then chown postgres $(PG_DIR); fi; \
	  test -f $(PG_DIR)/PG_VERSION || $(PG_AS) $$PGBIN/initdb --no-sync -D $(PG_DIR) -U operando -A trust >/dev/null; \
	  $(PG_AS) $$PGBIN/pg_ctl -D $(PG_DIR) -l $(PG_DIR)/server.log -w \
	    -o "-c listen_addresses=127.0.0.1 -p $(PG_PORT) -k $(PG_DIR)" start; fi
	@echo "export OPERANDO_TEST_POSTGRES_URI=$(PG_URI)"

postgres-stop:
	@PGBIN=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); \
	$(PG_AS) $$PGBIN/pg_ctl -D $(PG_DIR) -w stop

# Redis on loopback for bluesky-queueserver (development and tests; CI runs this too): installs
# Debian's redis-server if missing and starts it on 127.0.0.1:$(REDIS_PORT) only, once.
REDIS_PORT ?= 6379
REDIS_DIR ?= /tmp/operando-redis
redis:
	@command -v redis-server >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server)
	@if redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1; then echo "Redis already up on 127.0.0.1:$(REDIS_PORT)"; else \
	  mkdir -p $(REDIS_DIR) && redis-server --bind 127.0.0.1 --port $(REDIS_PORT) --protected-mode yes \
	    --dir $(REDIS_DIR) --logfile $(REDIS_DIR)/redis.log --pidfile $(REDIS_DIR)/redis.pid --daemonize yes && \
	  for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.5; done && \
	  echo "Redis up on 127.0.0.1:$(REDIS_PORT) (data in $(REDIS_DIR))"; fi

redis-stop:
	redis-cli -h 127.0.0.1 -p $(REDIS_PORT) shutdown nosave

# bluesky-queueserver's RE manager running operando's plans, sockets on 127.0.0.1 (see README,
# "Remote and queued runs"). Runs in the foreground; runs go to DATA's catalog.
DATA ?= data
queue-server: $(STAMP) redis
	$(BIN)/python -m operando.acquisition.queue.server --data $(DATA) --redis 127.0.0.1:$(REDIS_PORT)
