# lepton: the two set-up commands.
#   make run   - install missing packages (as root), build, start the demo
#   make test  - build every variant and run the whole suite through ctest
# Other targets: build, install (PREFIX=...), bench, fuzz (FUZZ_SECONDS=...), clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 10
CMAKE_FLAGS ?=

.PHONY: all setup build build-asan build-fuzz run test install bench fuzz clean

all: build

setup:
	@sh scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) \
	  -DLEPTON_ASAN_DIR=$(abspath $(ASAN_BUILD)) -DLEPTON_FUZZ_DIR=$(abspath $(FUZZ_BUILD)) \
	  -DLEPTON_FUZZ_SECONDS=$(FUZZ_SECONDS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DLEPTON_VARIANT=asan -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)

$(FUZZ_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DLEPTON_VARIANT=fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: setup $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: setup $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

build-fuzz: setup $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

# The main job: the broker on its defaults (amqp://127.0.0.1:5672, data in
# ./lepton-data), until Ctrl-C.
run: build
	@echo "lepton-broker on amqp://127.0.0.1:5672 (data in ./lepton-data); Ctrl-C stops it.  Try:"
	@echo "  $(BUILD)/lepton-send -c 10 amqp://127.0.0.1:5672/queue.orders"
	@echo "  $(BUILD)/lepton-recv -c 10 --print amqp://127.0.0.1:5672/queue.orders"
	@echo "  $(BUILD)/lepton-recv -c 0 --print 'amqp://127.0.0.1:5672/topic.news.#'   # then send to topic.news.x"
	@exec $(BUILD)/lepton-broker

test: build build-asan build-fuzz
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

install: build
	cmake --install $(BUILD)

bench: build
	$(BUILD)/bench/codec
	$(BUILD)/bench/engine
	bench/compare --build $(BUILD)

fuzz: build-fuzz
	@for f in $(FUZZ_BUILD)/fuzz/fuzz_*; do \
	  n=$$(basename $$f); echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  fuzz/run.sh $$f fuzz/corpus/$$n $(FUZZ_SECONDS) || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
