# Two commands set everything up on a fresh clone:
#   make demo   - venv, sandbox, a real rotation of prd-cn, its status
#   make test   - the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: demo test test-fast lint bench sandbox-down clean chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[sandbox,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python -m rotator.sandbox.demo

# The dashboard's browser tests drive Debian's Chromium (browser downloads are out of reach):
# installed quietly when it is missing and this runs as root with apt; otherwise those tests
# say why they are skipped.
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    -o Dpkg::Use-Pty=0 chromium) >/dev/null 2>&1 \
	    || echo "chromium could not be installed: the browser tests will be skipped"; \
	fi

test: $(STAMP) chromium
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
