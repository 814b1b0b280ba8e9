# EFSC — the two commands a user needs: `make demo` and `make test`.
# Both install missing system packages (Debian/Ubuntu, via apt-get) first.

SWIFT    ?= swift
DEPS     := pkg-config openssl mosquitto mosquitto-clients libmosquitto-dev librocksdb-dev libssl-dev python3 python3-paho-mqtt
EFSC_BIN := .build/release/efsc

.PHONY: all deps build test demo bench sim fuzz fuzz-seeds clean

all: build

# Installs only the packages that are absent; a no-op on a prepared machine.
deps:
	@missing=""; \
	for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build -c release --product efsc

# The suite is built optimised (release, with -enable-testing for @testable
# imports): the consensus simulator runs thousands of seeds, and the package
# itself carries no unsafe flags so it can be depended on by version. The
# integration tests drive the efsc binary of the same build. It has its own
# build directory, so `make test` and `make demo` (a plain release build, as
# benchmarked) do not rebuild each other's.
TEST_FLAGS := -c release -Xswiftc -enable-testing --scratch-path .build-test

test: deps
	$(SWIFT) build --build-tests $(TEST_FLAGS)
	$(SWIFT) test --skip-build $(TEST_FLAGS) --disable-xctest

demo: build
	EFSC=$(EFSC_BIN) bash scripts/demo.sh

bench: build
	$(EFSC_BIN) bench issue --claim-bytes 1024,2048,4096 --seconds 3
	$(EFSC_BIN) bench verify --claim-bytes 1024,2048,4096 --seconds 3
	$(EFSC_BIN) bench bus --payload-bytes 256 --qos 0 --seconds 2
	$(EFSC_BIN) bench channels --channels 100 --rate 400 --seconds 5

# Coverage-guided fuzzing with libFuzzer: every target of Sources/EFSCFuzz for
# FUZZ_SECONDS each (scripts/fuzz.sh says what a finding is and where it goes).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := transaction query block channel base58 pattern replica
# Coverage instrumentation is asked of the compiler only (-Xfrontend): with
# -sanitize=fuzzer at link time libFuzzer's own main clashes with the entry
# point SwiftPM gives executables. libFuzzer comes from the toolchain's
# fuzzer_no_main runtime, driven by Sources/efsc-fuzz (LLVMFuzzerRunDriver).
FUZZER_LIB    = $(firstword $(wildcard $(dir $(realpath $(shell command -v $(SWIFT))))../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a))
FUZZ_FLAGS    = -c release --product efsc-fuzz --scratch-path .build-fuzz -Xswiftc -DEFSC_LIBFUZZER \
                -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer -Xswiftc -Xfrontend -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
                -Xlinker $(FUZZER_LIB) -Xlinker -lstdc++
fuzz: deps
	@[ -n "$(FUZZER_LIB)" ] || { echo "fuzz: the Swift toolchain has no libclang_rt.fuzzer_no_main"; exit 1; }
	$(SWIFT) build $(FUZZ_FLAGS)
	EFSC_FUZZ_BIN=.build-fuzz/release/efsc-fuzz bash scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Rewrites the generated seeds of fuzz/corpus/ (real messages of each kind).
fuzz-seeds: deps
	$(SWIFT) build --build-tests $(TEST_FLAGS)
	EFSC_WRITE_FUZZ_SEEDS=1 $(SWIFT) test --skip-build $(TEST_FLAGS) --disable-xctest --filter FuzzCorpusTests

# A long consensus simulation: SEEDS runs for n=4 (plus n=7 and n=10 shares),
# both with network faults and with the adversary crafting attacks.
SEEDS ?= 10000
sim: deps
	$(SWIFT) build --build-tests $(TEST_FLAGS)
	EFSC_SIM_SEEDS=$(SEEDS) $(SWIFT) test --skip-build $(TEST_FLAGS) --disable-xctest --filter PBFTSimulationTests

clean:
	rm -rf .build .build-test .build-fuzz demo-out fuzz/work
