# The two commands of the README. Both create .venv on first use and install the pinned stack.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: repro test setup clean

setup: $(STAMP)

# pip compiles the 12,500 modules one at a time; compileall does it on every core (36 s less set-up
# on 2 cores), and skips the 2,900 modules of the packages' own test suites, which nothing imports
# (another 14 s). Like pip, it skips what this Python cannot compile (a torch test file written for
# Python 3.12), so its exit status is not the install's.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -r requirements.txt
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/' $(VENV)/lib > /dev/null || true
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/python -m stages.check
	$(BIN)/python -m scripts.prune_lock
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

clean:
	rm -rf $(VENV)
