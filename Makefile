# The README's two commands: `make run` (the main job) and `make test`. Each first installs the
# missing Debian 12 packages (as root; otherwise it prints the apt-get command) and builds.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
FORESIGHT := $(BUILD_DIR)/apps/foresight/foresight
# Default data of `make backtest`: the 40-VM sample of the Bitbrains trace shipped in the repository.
TRACE ?= data/bitbrains-rnd-sample
FORMAT ?= bitbrains
OUT ?= out
# `make run`: seconds the demo workload runs; the loop stops when it exits.
DURATION ?= 90
# As root the loop resizes the demo's own cgroup; otherwise it plans in dry-run.
RUN_MODE := $(if $(filter 0,$(shell id -u)),--apply,--backend dry-run)

.PHONY: run backtest test test-slow bench build deps deps-test clean

# The main job: Foresight closes the loop on this host around a phased demo workload it launches
# in its own cgroup (shipped LSTM, SQLite history and audit in $(OUT)), with a live view.
run: deps build
	mkdir -p $(OUT)
	$(FORESIGHT) run $(RUN_MODE) --view 10 --database $(OUT)/history.db --audit $(OUT)/audit.db \
	  -- $(FORESIGHT) bench workload --kind cpu --cycle 30 --duration $(DURATION) \
	  --out $(OUT)/demo-workload.json
	@echo "--- the demo workload's own latency: $$(cat $(OUT)/demo-workload.json)"
	-$(FORESIGHT) history --db $(OUT)/audit.db --limit 10

# Foresight's forecasters and the baselines replayed on a trace (default: the shipped sample).
backtest: deps build
	mkdir -p $(OUT)
	$(FORESIGHT) backtest --trace $(TRACE) --format $(FORMAT) --json $(OUT)/backtest.json --plot $(OUT)/plots

test: deps-test build
	cd $(BUILD_DIR) && ctest --output-on-failure -j2 -LE "bench|slow"

# Tests that read the full traces in ../shared/data (skipped there when absent).
test-slow: deps-test build
	cd $(BUILD_DIR) && ctest --output-on-failure -L slow

bench: deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -V -L bench

build:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD_DIR) -j2

deps:
	scripts/deps.sh build

deps-test:
	scripts/deps.sh all

clean:
	rm -rf $(BUILD_DIR) $(OUT)
