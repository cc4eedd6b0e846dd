# A thin wrapper over CMake. `make run` and `make test` set everything up on a
# fresh Debian machine (packages, build) and then run the main job / the tests.
BUILD ?= build
ASAN_BUILD ?= build-asan
EMU_BUILD ?= build-cuda-emulator
FUZZ_BUILD ?= build-fuzz
# `make fuzz`: each target for FUZZ_RUNS executions (the CI smoke), or for
# FUZZ_SECONDS seconds each when that is set (the long runs)
FUZZ_RUNS ?= 1000
FUZZ_SECONDS ?=
JOBS ?= $(shell nproc)
PROFILE ?= quick

.PHONY: all deps deps-test build run test test-cuda-emulator test-asan fuzz bench clean

all: build

# build dependencies only; the tests also need Debian's python3-torch and chromium
deps:
	GROVE_TEST_DEPS=0 scripts/install-deps

deps-test:
	scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The main job: the SANA 1.5 pipeline (train, grow, prune, fine-tune, judge,
# search) in its quick profile, under 15 minutes on 2 cores; the report is
# runs/quick/report.html (docs/pipeline.md). A re-run skips finished stages.
run: build
	$(BUILD)/grove recipes/pipeline.lua --profile $(PROFILE)

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure
	$(MAKE) test-cuda-emulator

# The CUDA specs (parity suite, device API, a training run) with the CUDA
# kernels compiled for the CPU emulator (tests/cuda_emu): no GPU needed.
test-cuda-emulator: deps-test
	cmake -S . -B $(EMU_BUILD) -DCMAKE_BUILD_TYPE=Release -DGROVE_CUDA=EMULATOR
	cmake --build $(EMU_BUILD) -j $(JOBS) --target grove_exe
	cd $(EMU_BUILD) && ctest -L cuda --output-on-failure

# The whole suite again under AddressSanitizer and UBSan.
test-asan: deps-test build
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGROVE_SANITIZE=ON -DGROVE_CUDA=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ctest --output-on-failure

# libFuzzer targets of every input format under ASan + UBSan (tests/fuzz/README.md);
# the smoke also takes the long runs' path once: a target stopped by SIGINT
# after 2 s of CPU (run.sh cpu C), which must end ok
fuzz: deps-test
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGROVE_FUZZ=ON -DGROVE_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	tests/fuzz/run.sh $(FUZZ_BUILD) $(if $(FUZZ_SECONDS),seconds $(FUZZ_SECONDS),runs $(FUZZ_RUNS))
	$(if $(FUZZ_SECONDS),,tests/fuzz/run.sh $(FUZZ_BUILD) cpu 2 json)

bench: build
	scripts/bench

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(EMU_BUILD) $(FUZZ_BUILD)
