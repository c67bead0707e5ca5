# The two commands a newcomer needs (see README.md):
#   make book   set up, execute every chapter, write the HTML to _build/html
#   make test   set up, then run every test (package, notebooks via nbval, book build, browser)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup book test clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[book,test]"
	touch $(STAMP)

setup: $(STAMP)

test: setup
	SOBIRL_BUDGET=quick $(BIN)/python -m pytest

book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

clean:
	rm -rf _build
