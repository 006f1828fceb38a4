# exitless: build, run and test. Every target installs what it needs (scripts/setup.sh), so a
# fresh Debian machine only needs `make run` or `make test`.
#
#   make              build out/exitless.elf (for gdb) and out/exitless.bin (arm64 Image)
#   make run          boot Debian's Linux as a VM on QEMU virt, to a busybox shell
#                     GIC=2|3|4 (3)  CPU=cortex-a72|max  SMP=n (4)
#                     BUNDLE=name (scripts/bundles/name.toml; linux, or linux-v2 with GIC=2)
#   make bundle       build the VM bundle (scripts/bundles/$(BUNDLE).toml + images) only
#   make run-rpi4     boot a Linux VM on QEMU raspi4b (QEMU 10, fetched into the cache)
#   make rpi4         write a Raspberry Pi 4 SD-card folder (out/rpi4)
#   make debug        like run, QEMU waits for gdb and prints the command that attaches
#   make test         make check, the host unit tests, the QEMU boot tests, the guest tests
#                     (native vs exitless): what CI runs (.ci/run)
#   make guest        build the GIC conformance/benchmark guest (tests/guest -> out/guest.bin)
#   make guest-tests  run it natively and under exitless on GICv3, GICv2 and a GICv4 host,
#                     compare the two; then, on GICv3 and GICv2, the hostile guest beside it
#   make bench        interrupt benchmarks, native vs exitless under -icount (docs/bench/);
#                     BENCH_GIC=3,2,4 for every GIC (default 3); not part of make test
#   make fuzz         coverage-guided fuzzing (cargo-fuzz) of the guest-facing decoders and
#                     models, FUZZ_SECONDS (60) per target; FUZZ_SAVE=1 keeps the corpus;
#                     not part of make test
#   make test-host    host unit tests only (cargo test on the pure core, core/)
#   make test-qemu    QEMU boot tests only
#   make check        rustfmt, clippy -D warnings (core on the host, both crates bare-metal),
#                     the layering rule (scripts/check-layering.sh); quick, and first in make test
#   make fixtures     regenerate the DTB fixtures of the host tests (scripts/fixtures)
#   make clean

TARGET   := aarch64-unknown-none-softfloat
HOST     := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
OUT      := out
ELF      := $(OUT)/exitless.elf
BIN      := $(OUT)/exitless.bin
CARGO_ELF := target/$(TARGET)/release/exitless
OBJCOPY  := aarch64-linux-gnu-objcopy
GIC      ?= 3
CPU      ?= cortex-a72
SMP      ?= 4
# The default VM has a vGICv3, or a vGICv2 on a GICv2 host.
BUNDLE   ?= $(if $(filter 2,$(GIC)),linux-v2,linux)
QEMU     := python3 scripts/qemu.py
GUEST_ELF := target/guest/$(TARGET)/release/exitless-guest
GUEST_BIN := $(OUT)/guest.bin

.PHONY: all setup build bundle run run-rpi4 rpi4 debug test test-host test-qemu check fixtures clean guest guest-tests bench fuzz
.DEFAULT_GOAL := all

all: build

setup:
	@bash scripts/setup.sh

# Cargo decides whether anything changed; the image is then re-made from the ELF and checked:
# only R_AARCH64_RELATIVE relocations may remain (entry.S applies nothing else).
build: setup
	cargo build --release --target $(TARGET)
	@mkdir -p $(OUT)
	@cp $(CARGO_ELF) $(ELF)
	@$(OBJCOPY) -O binary $(ELF) $(BIN)
	@bash scripts/check-image.sh $(ELF) $(BIN)

bundle: setup
	bash scripts/mk-default-bundle.sh $(BUNDLE)

run: build
	$(QEMU) run --gic $(GIC) --cpu $(CPU) --smp $(SMP) --mem 2G \
		--initrd "$$(bash scripts/mk-default-bundle.sh $(BUNDLE))"

run-rpi4: build
	$(QEMU) run --machine raspi4b --initrd "$$(bash scripts/mk-default-bundle.sh rpi4)"

rpi4: build
	bash scripts/mk-rpi4-sd.sh

debug: build
	$(QEMU) run --gic $(GIC) --cpu $(CPU) --smp $(SMP) --mem 2G --gdb \
		--initrd "$$(bash scripts/mk-default-bundle.sh $(BUNDLE))"

# The checks come first: they take seconds and catch a format slip, a lint or a layering break
# before the long QEMU runs.
test: check test-host test-qemu guest-tests

test-host: setup
	cargo test -p exitless-core --target $(HOST)

test-qemu: build
	bash scripts/boot-tests.sh

# The test guest is its own workspace (tests/guest/Cargo.toml). RUSTFLAGS replaces the
# hypervisor's target flags from .cargo/config.toml (PIE, linker.ld); its build.rs links it at
# 0x40080000 instead.
guest: setup
	cd tests/guest && RUSTFLAGS="-C force-frame-pointers=yes" \
		CARGO_TARGET_DIR=$(CURDIR)/target/guest cargo build --release --target $(TARGET)
	@mkdir -p $(OUT)
	@$(OBJCOPY) -O binary $(GUEST_ELF) $(GUEST_BIN)

guest-tests: build guest
	python3 scripts/guest-tests.py

# The plot needs matplotlib: Debian's python3-matplotlib, installed here only (make test does
# not need it), and used through Debian's own python3 (another python3 may come first in PATH).
BENCH_GIC ?= 3
BENCH_PY  := $(if $(wildcard /usr/bin/python3),/usr/bin/python3,python3)
bench: build guest
	@$(BENCH_PY) -c "import matplotlib" 2>/dev/null || { \
		echo "bench: installing python3-matplotlib"; \
		apt-get install -y -q --no-install-recommends python3-matplotlib >/dev/null || \
		{ apt-get update -q >/dev/null && \
		  apt-get install -y -q --no-install-recommends python3-matplotlib >/dev/null; }; }
	$(BENCH_PY) scripts/bench.py --gic $(BENCH_GIC)

fuzz: setup
	python3 scripts/fuzz.py

check: setup
	cargo fmt --all --check
	cargo clippy -p exitless-core --all-targets --target $(HOST) -- -D warnings
	cargo clippy -p exitless-core --features fuzzing --target $(HOST) -- -D warnings
	cargo clippy --workspace --release --target $(TARGET) -- -D warnings
	bash scripts/check-layering.sh
	cd tests/guest && cargo fmt --check && RUSTFLAGS="-C force-frame-pointers=yes" \
		CARGO_TARGET_DIR=$(CURDIR)/target/guest cargo clippy --release --target $(TARGET) -- -D warnings

fixtures: setup
	bash scripts/make-fixtures.sh

clean:
	cargo clean
	rm -rf $(OUT)
