# The README's two commands: `make run` (the main job) and `make test`. Each first installs the
# missing Debian 12 packages (as root; otherwise it prints the apt-get command) and builds.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
FORESIGHT := $(BUILD_DIR)/apps/foresight/foresight
# Default data: the 40-VM sample of the Bitbrains trace shipped in the repository.
TRACE ?= data/bitbrains-rnd-sample
FORMAT ?= bitbrains
OUT ?= out

.PHONY: run test test-slow bench build deps deps-test clean

run: deps build
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
