# Two commands on a fresh clone: `make demo` and `make test`. Each bootstraps .venv from python3
# (idempotent: the install step reruns only when pyproject.toml or requirements.lock change).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEED ?= 2000
export MPLBACKEND := Agg

.PHONY: demo test bench clean-data venv

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || \
	  (echo "python3 -m venv failed; installing python3-venv with apt" && \
	   apt-get update -q && apt-get install -y -q python3-venv && $(PY) -m venv $(VENV))
	$(BIN)/python -m pip install -q --upgrade "pip==26.3" 2>/dev/null || true
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/operando run galvanostatic_cycling --profile sim --speed $(SPEED) --data data

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m operando.benchmarks

clean-data:
	rm -rf data
