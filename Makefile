# SPDX-License-Identifier: Apache-2.0
# Kodiak — the two commands a new user types, and a few more.
#   make demo   install what is missing, build, start a local cluster, run the demos, stop
#   make test   install what is missing, build, run every test
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: all setup build install-dev demo test check-asan bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKODIAK_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@$(MAKE) -s --no-print-directory install-dev

# `import kodiak` and the `kodiak` command for /usr/bin/python3 from anywhere,
# pointing at this checkout (root only; otherwise prints what to export).
install-dev:
	@bash scripts/install-dev.sh

demo: build
	@bash scripts/demo.sh $(BUILD)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j 2

# The C tests again, built with AddressSanitizer and UBSan.
check-asan: setup
	@cmake -S . -B $(BUILD)-asan -DKODIAK_ASAN=ON -DKODIAK_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	@cd $(BUILD)-asan && ctest --output-on-failure -j 2 -E install

bench: build
	@$(BUILD)/bench/fam_bench

clean:
	rm -rf $(BUILD) $(BUILD)-asan
