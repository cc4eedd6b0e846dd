# A thin wrapper over CMake. `make run` and `make test` set everything up on a
# fresh Debian machine (packages, build) and then run the main job / the tests.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
RUN_OUT ?= runs/tiny

.PHONY: all deps deps-test build run test test-asan bench clean

all: build

# build dependencies only; the tests also need Debian's python3-torch
deps:
	GROVE_WITH_TORCH=0 scripts/install-deps

deps-test:
	scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The main job: train the tiny preset on the shapes set (under 10 minutes on
# 2 cores), then sample the evaluation prompts and print the evaluator's table.
run: build
	$(BUILD)/grove recipes/train.lua --preset tiny --steps 4000 --decay 1300 --lr 2e-3 --batch 32 --time-limit 540 --out $(RUN_OUT)

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure

# The whole suite again under AddressSanitizer and UBSan.
test-asan: deps-test build
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGROVE_SANITIZE=ON -DGROVE_CUDA=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ctest --output-on-failure

bench: build
	scripts/bench

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
