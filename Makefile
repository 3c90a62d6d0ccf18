# Two commands set everything up on a fresh clone:
#   make demo   - venv, sandbox, a real rotation of prd-cn, its status
#   make test   - the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint bench sandbox-down clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[sandbox,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python -m rotator.sandbox.demo

test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n 4 --dist loadfile --durations=15

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check rotator tests bench

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

sandbox-down: $(STAMP)
	$(BIN)/rotate sandbox down

clean:
	rm -rf $(VENV) .rotator .pytest_cache
