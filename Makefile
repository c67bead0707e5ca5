# The two commands a newcomer needs (see README.md); both set up everything from the project's own files:
#   make book   set up, execute every chapter with the full budget, write the HTML to _build/html
#   make test   set up, then run every test with the quick budget (package, the book build executing every
#               chapter with warnings as errors, and the rendered pages in headless Chromium without network)
# Only Python >= 3.11 with pip and venv is assumed. Override the interpreter with `make test PY=python3.11`.
PY ?= python3
# Python keeps the bytecode of what it imports in __pycache__ (in .venv, and in folders git ignores), so only the first
# import compiles. Some containers and CI images set PYTHONDONTWRITEBYTECODE, and every process would then compile
# torch, scipy and matplotlib again: 2-4 s each, for each of the hundreds of processes the tests and the book start.
export PYTHONDONTWRITEBYTECODE :=
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help setup lock vendor browser poppler book student student-pdf assignments pdf test lab clean

help:
	@echo "make book   build the book (HTML in _build/html)"
	@echo "make test   run every test (quick budget)"
	@echo "make student  build the student edition (HTML in _build/student/html, notebooks in _build/student/src/book)"
	@echo "make student-pdf  print the student edition to _build/pdf/sobirl-book-student.pdf"
	@echo "make assignments  one otter-grader assignment per chapter in _build/assignments (HIDDEN_SEED=... for yours)"
	@echo "make pdf    print the whole book to _build/pdf/sobirl-book.pdf"
	@echo "make lab    open the chapters in JupyterLab (quick budget; make lab BUDGET=full for the book's)"
	@echo "make lock   regenerate requirements-lock.txt after changing a pin in pyproject.toml"
	@echo "make clean  remove build outputs (keeps .venv and vendor/)"

# The virtual environment. Checked first so a too-old Python fails with a message instead of a pip error.
$(PYTHON):
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed, found " + sys.version.split()[0] + "; run with PY=python3.11")'
	$(PY) -m venv $(VENV)

# Every install is constrained by the lock (requirements-lock.txt: the whole dependency tree, exact versions, for
# Linux, macOS and Windows alike), so a clone installs the same versions next year; pyproject.toml keeps the direct
# pins. Reinstall whenever either changes. TORCH_INDEX (optional) is a pip index to take torch from first, e.g.
# PyTorch's CPU-only wheels on Linux (make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu): PyPI's Linux
# torch is the CUDA build, gigabytes of it. Either way the lock's torch==2.13.0 holds (2.13.0+cpu satisfies it).
LOCK := requirements-lock.txt
TORCH_INDEX ?=
# --no-compile: pip would byte-compile every installed module (a minute of CPU, most of it for modules nothing
# imports); Python compiles the ones that are imported on first use instead (and caches them: see above).
$(STAMP): pyproject.toml $(LOCK) | $(PYTHON)
	$(if $(TORCH_INDEX),$(PYTHON) -m pip install -q --no-compile -c $(LOCK) --extra-index-url "$(TORCH_INDEX)" torch)
	$(PYTHON) -m pip install -q --no-compile -c $(LOCK) -e ".[book,test,ray]"
	@touch $@

setup: $(STAMP)

# Regenerate the lock after changing a pin in pyproject.toml (and environment.yml): uv resolves the pins for every
# platform at once (--universal) and keeps every other version already in the lock unless the new pins need another.
UV_VERSION := 0.13.8
lock: | $(PYTHON)
	$(PYTHON) -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra book --extra test --extra ray --universal --python-version 3.11 \
	  --custom-compile-command "make lock" -o $(LOCK)

# MathJax 3, RequireJS and the ipywidgets HTML manager from the npm registry into the git-ignored vendor/, so the
# book renders math and widgets without network. Without npm or a registry it warns and the book uses CDNs.
# Also Pyodide and its wasm wheels into vendor/live/ for the live widgets (book/_ext/live_widgets.py); without them
# it warns and the widgets stay static.
vendor: setup
	@$(PYTHON) book/_ext/offline_assets.py fetch

# Debian's Chromium for the browser test, best effort: installed only when missing and running as root. Without it the
# browser test skips (and fails under CI=true).
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser test..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "WARNING: could not install chromium; tests/test_browser.py will skip (or fail under CI)"; \
	else \
	  echo "WARNING: chromium is missing and cannot be installed without root; tests/test_browser.py will skip (or fail under CI)"; \
	fi

# Debian's poppler-utils (pdfunite joins the printed pages; pdftoppm/pdftotext let the PDF test look at them), best
# effort like `browser`.
poppler:
	@if command -v pdfunite >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's poppler-utils for the PDF..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null) \
	    || echo "WARNING: could not install poppler-utils; make pdf and tests/test_pdf.py need it"; \
	else \
	  echo "WARNING: poppler-utils is missing and cannot be installed without root; make pdf and tests/test_pdf.py need it"; \
	fi

# Chapters run BOOK_JOBS at a time into the jupyter-cache (tools/execute_book.py), then the build renders them; a
# rebuild executes only the chapters whose code changed (everything again when the package, book/data or the pins
# changed). `make book BOOK_JOBS=4` on a machine with more cores and memory.
BOOK_JOBS ?= 2
book: vendor
	SOBIRL_BUDGET=full $(PYTHON) tools/execute_book.py --budget full --jobs $(BOOK_JOBS)
	SOBIRL_BUDGET=full $(BIN)/jupyter-book build . -W -n --keep-going

# The student edition: the book without solutions or reference implementations, implementation exercises as stubs.
# It reuses the execution of `make book` (_build/jupyter_execute) instead of running every chapter again.
student: book
	$(PYTHON) tools/student_edition.py --executed _build/jupyter_execute/book --out _build/student

# The student edition as one PDF (no solutions): tools/book_pdf.py on the student HTML, pages of the student toc.
student-pdf: student browser poppler
	$(PYTHON) tools/student_edition.py --out _build/student --print-pdf _build/pdf/sobirl-book-student.pdf

# One otter-grader assignment per chapter (tools/otter_assignments.py): student notebook, autograder zip for
# Gradescope (it carries a wheel of sobirl_lite built here, and installs it) or `otter run` (local, no Docker),
# rubric. HIDDEN_SEED sets the hidden tests' cases: choose your own. Only the chapters' sources are read; nothing
# is executed.
HIDDEN_SEED ?= 20260
CHAPTERS ?=
assignments: setup
	$(PYTHON) tools/otter_assignments.py --out _build/assignments --hidden-seed $(HIDDEN_SEED) $(if $(CHAPTERS),--chapters $(CHAPTERS))

# The whole book as one PDF, printed from the HTML of `make book` by headless Chromium (tools/book_pdf.py).
pdf: book browser poppler
	$(PYTHON) tools/book_pdf.py --html _build/html --out _build/pdf/sobirl-book.pdf

# One thread per numerical library, TEST_JOBS pytest-xdist workers (default 3 on the 2-core development machine:
# much of the suite waits on subprocesses, browsers and servers, and a third worker fills that time; from a fresh
# clone, make test took 11.0 min with 3 workers against 12.1 with 2). --dist loadfile runs each test module on one
# worker, and --no-loadscope-reorder keeps tests/conftest.py's order: the book build starts first, the modules
# reading it go last.
TEST_JOBS ?= 3
test: vendor browser poppler
	SOBIRL_BUDGET=quick OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PYTHON) -m pytest -n $(TEST_JOBS) --dist loadfile \
	  --no-loadscope-reorder --durations=25

# JupyterLab on the chapters (book/): the MyST .md chapters open as notebooks through jupytext, and saving writes
# back to the .md; the widgets are live. The configuration lives in .lab/ (tests/test_lab.py starts the same server).
# Quick budget by default (most chapters run in seconds to a minute, chapters 7, 8, 11 in a few); `make lab BUDGET=full` gives the
# numbers of the rendered book. Extra options go to JupyterLab: `make lab LAB_ARGS="--port=8899"`.
BUDGET ?= quick
LAB_ARGS ?=
lab: setup
	$(if $(filter $(BUDGET),quick full),,$(error BUDGET must be quick or full, not '$(BUDGET)'))
	JUPYTER_CONFIG_PATH="$(CURDIR)/.lab$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" SOBIRL_BUDGET=$(BUDGET) \
	  $(BIN)/jupyter-lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean:
	rm -rf _build screenshots
