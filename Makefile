# haulage — two commands on a fresh machine:
#   make run    set up from nothing, run the pipeline on fixtures/ into ./haulage-out
#   make test   set up from nothing, run the whole test suite
# The virtualenv is (re)built when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HAULAGE := $(VENV)/bin/haulage
STAMP := $(VENV)/.haulage-installed
OUTPUT_DIR ?= haulage-out
PYTEST_ARGS ?=
FUZZ_SECONDS ?= 300
FUZZ_DIR ?= .fuzz
# strict: an editable install code-reading tools can follow (see README, Layout); empty: setuptools' default
EDITABLE_MODE ?=

.PHONY: setup browser run test explore bench fuzz agents-stress memory-stress clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]' $(if $(EDITABLE_MODE),--config-settings editable_mode=$(EDITABLE_MODE))
	touch $(STAMP)

setup: $(STAMP)

# The demo starts from an empty output folder, so its summary shows every row
# (run into the same folder again, it would say the files are already ingested).
run: setup
	rm -rf $(OUTPUT_DIR)
	$(HAULAGE) run --input 'fixtures/*.log*' --output-dir $(OUTPUT_DIR)

# The browser tests of `haulage serve` drive Debian's headless Chromium. Install
# it when this machine can (root with apt-get); elsewhere say loudly that those
# tests will be skipped. In CI (CI set) a Chromium that cannot be installed is an error.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests" >&2; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	  elif [ -n "$$CI" ]; then \
	    echo "error: chromium is missing and cannot be installed (needs root and apt-get)" >&2; exit 1; \
	  else \
	    echo "WARNING: chromium is not installed and cannot be installed here (needs root and apt-get):" \
	         "the browser tests of haulage serve will be SKIPPED" >&2; \
	  fi; }

test: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The property tests with fresh random examples (make test draws the same ones
# every run); a failure found here becomes an @example in its test.
explore: setup
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q -m "not emulator" $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/parse_bench.py
	$(PY) benchmarks/pipeline_bench.py

# Coverage-guided fuzzing of framing + the line parser (tests/fuzz/fuzz_framing.py) for
# FUZZ_SECONDS; seeds come from fixtures/, the growing corpus stays in $(FUZZ_DIR)/corpus,
# failing inputs land in $(FUZZ_DIR)/artifacts/ (copy them to tests/fuzz/regressions/).
fuzz: setup
	mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts
	$(PY) tests/fuzz/fuzz_framing.py --write-seeds $(FUZZ_DIR)/seeds
	$(PY) tests/fuzz/fuzz_framing.py -max_total_time=$(FUZZ_SECONDS) -max_len=20000 -timeout=30 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/ $(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds

# Adversarial user agents through every family parser, without the length cap,
# up to 64 KiB each; and the old backtracking patterns on issue 10's agents.
agents-stress: setup
	$(PY) benchmarks/agents_stress.py --before

# A 2-million-line Pub/Sub backlog through both local streaming graphs, peak RSS
# of the haulage process checked (make test runs the windowed pull only).
memory-stress: setup
	HAULAGE_STRESS=1 $(PY) -m pytest -s tests/test_memory.py

clean:
	rm -rf $(VENV) $(OUTPUT_DIR) .pytest_cache .hypothesis build *.egg-info $(FUZZ_DIR)
