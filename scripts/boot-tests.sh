#!/usr/bin/env bash
# boot-tests.sh: boots the real image under QEMU and checks the serial log (scripts/qemu.py).
# Every case has a time limit and fails on a missing line, a panic or an EL2 exception report,
# printing the log's tail. Run by `make test-qemu` (after `make build`).
set -uo pipefail
cd "$(dirname "$0")/.."
T="python3 scripts/qemu.py test"
fails=0
check() { "$@" || fails=$((fails + 1)); }

# The banner on every supported GIC and CPU: EL2, the GIC with its list registers, every CPU
# online, and a clean power-off (QEMU exits by itself).
# Without a VM bundle the hypervisor says so and powers off.
banner() { # name gic cpu gicname extra...
	local name=$1 gic=$2 cpu=$3 gicname=$4
	shift 4
	check $T "$name" --gic "$gic" --cpu "$cpu" --smp 4 --exit \
		--expect "starting at EL2 \(non-VHE\)" \
		--expect "GIC: $gicname: .*4 list registers, 5 priority bits" "$@" \
		--expect "CPU 3 online" --expect "all 4 CPUs online" \
		--expect "no VM bundle: the boot loader loaded no initrd"
}
banner virt-gicv2-a72 2 cortex-a72 GICv2
# On GICv3/v4 exitless owns the ITS: tables, one collection per redistributor, and a self-test
# that raises an LPI with INT and takes it at EL2.
ITSLINE="ITS at 0x8080000: device table for 65536 IDs .*4 collections mapped .*LPIs work \\(LPI 8192 taken"
banner virt-gicv3-a72 3 cortex-a72 GICv3 --expect "GIC: maintenance interrupt INTID 25" \
	--expect "$ITSLINE"
banner virt-gicv3-max 3 max GICv3 --expect "$ITSLINE"
banner virt-gicv4-a72 4 cortex-a72 GICv4 --expect "direct vLPI injection yes" --expect "$ITSLINE"
banner virt-gicv4-max 4 max GICv4 --expect "$ITSLINE"

# Raspberry Pi 4 under QEMU 10: loaded at 0x200000, GIC-400 with 4 LRs, three secondaries
# released from the spin-table, powered off through the PM watchdog.
# exitless owns the Pi's console: it routes GPIO 14/15 to UART0 and programs the PL011 itself
# (the register values are read back into the log line).
PICONSOLE="console: UART0 \\(PL011 at 0xfe201000\\) set up by exitless: GPIO 14/15 ALT0 \\(GPFSEL1 0x00024000\\), 115200 8N1 from 48 MHz \\(IBRD 26, FBRD 3, LCR_H 0x70, CR 0x301\\)"
check $T rpi4b --machine raspi4b --exit --timeout 120 \
	--expect "starting at EL2 \(non-VHE\) on \"Raspberry Pi 4 Model B\", image at 0x200000" \
	--expect "$PICONSOLE" \
	--expect "GIC: GICv2: 224 interrupt IDs, 4 list registers" \
	--expect "CPU 1 online" --expect "CPU 2 online" --expect "CPU 3 online" \
	--expect "all 4 CPUs online" --expect "no VM bundle"

# A user's mistakes: started at EL1, no DTB, a corrupt DTB, started at EL3 without a DTB.
check $T el1 --no-virt --exit \
	--expect "must be started at EL2 \(it was started at EL1\).*virtualization=on"
check $T no-dtb --exit --no-kernel \
	--expect "cannot use the device tree at 0x0: no device tree was passed in x0" \
	--expect "U-Boot: \`booti <image addr> <bundle addr>:<bundle size in hex> <fdt addr>\`" \
	-- -device loader,file=out/exitless.bin,addr=0x40200000,force-raw=on \
	-device loader,addr=0x40200000,cpu-num=0
mkdir -p out/logs
qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,dumpdtb=out/logs/virt.dtb \
	-cpu cortex-a72 -smp 2 -m 1G -nic none >/dev/null 2>&1
python3 scripts/corrupt-dtb.py out/logs/virt.dtb out/logs/corrupt.dtb
check $T corrupt-dtb --exit --dtb out/logs/corrupt.dtb \
	--expect "cannot use the device tree at 0x48000000: malformed structure block"
check $T el3-no-dtb --gic 3 --smp 2 --no-kernel --machine-opt secure=on \
	--expect "\(started at EL3\): cannot use the device tree at 0x0" --expect "halting" \
	-- -device loader,file=out/exitless.bin,addr=0x40200000,force-raw=on \
	-device loader,addr=0x40200000,cpu-num=0

# Linux guests: Debian's arm64 kernel with the busybox initramfs, the boot self-test of
# scripts/guest/init.sh (timer and IPI counts rising on every CPU, two accesses the hypervisor
# must abort), a clean power-off, and the counters showing no exit for interrupt acknowledge and
# completion. linux NAME BUNDLE VCPUS GICLINE [qemu.py machine options...]
# QEMU arguments of its own follow a `--`.
linux() {
	local name=$1 bundle=$2 vcpus=$3 gicline=$4
	shift 4
	local b opts=() qemu=()
	while (($#)); do
		if [[ $1 == -- ]]; then
			qemu=("$@")
			break
		fi
		opts+=("$1")
		shift
	done
	b=$(bash scripts/mk-default-bundle.sh "$bundle") || { fails=$((fails + 1)); return; }
	check $T "$name" --mem 2G --initrd "$b" --exit --timeout 300 "${opts[@]}" \
		--expect "VM 'linux': $vcpus vCPUs" \
		--expect "exitless-guest: init started on $vcpus CPUs" \
		--expect "$gicline" \
		--expect "exitless-guest: arch_timer and IPI counts rose on all $vcpus CPUs" \
		--expect "VM 'linux': vCPU .*which nothing owns.*the guest gets an abort \\(1 so far\\)" \
		--expect "exitless-guest: badaccess unowned exited with status 135" \
		--expect "VM 'linux': vCPU .*ISV=0.*at IPA 0x8000000.*the guest gets an abort \\(2 so far\\)" \
		--expect "exitless-guest: badaccess ldp exited with status 135" \
		--expect "exitless-guest: still running after the aborted accesses" \
		--expect "exitless-guest: test done" \
		--expect "VM 'linux' powered off" \
		--expect "exits for interrupt acknowledge and completion .*: 0" \
		--expect "exit path: 0 heap allocations" \
		--expect "all VMs are off: powering the machine off" \
		--forbid "counts did not rise" "${qemu[@]}"
}
V3LINE="GICv3: CPU1: found redistributor 1 region 0:0x00000000080c0000"
V2LINE=" 11: +[0-9]+ +[0-9]+ +GIC-0 +27 Level +arch_timer"
# Linux finds the VM's emulated ITS and sets up its tables through it.
V3ITS="ITS@0x0000000008080000: allocated [0-9]+ Devices"
linux linux-gicv3-a72 linux-test 2 "$V3LINE" --smp 4 --cpu cortex-a72 --also "$V3ITS"
linux linux-gicv3-max linux-test 2 "$V3LINE" --smp 4 --cpu max --also "$V3ITS"
# A device passed through: QEMU virt's PL031 RTC, its alarm SPI linked to the guest's. The
# guest then routes it to CPU 1 (GICD_IROUTER); the physical SPI must follow, so that no alarm
# is taken on vCPU 0's CPU and forwarded with a kick.
PTALSO=(--also "exitless-guest: passed-through RTC alarm interrupts: [1-9]"
	--also "exitless-guest: RTC alarm interrupts per CPU after routing to CPU 1: [0-9]+ [1-9]"
	--also "passthrough SPI ([2-9]|[1-9][0-9]+) \\(0 taken on another vCPU's CPU\\)")
linux linux-passthrough linux-passthrough-test 2 "$V3LINE" --smp 4 "${PTALSO[@]}"
# The host's PCIe bridge owned by the VM, with a virtio-blk-pci disk on it: Linux drives it
# with MSI-X through the VM's ITS (one exit per MSI), its DMA reaching the VM's identity-mapped
# RAM, and reads a file from the disk's ext2 file system (the test makes the image).
DISKTEXT="exitless read this from a virtio-blk-pci disk"
disk=out/logs/pci-disk.img
rm -rf out/logs/pci-disk "$disk"
mkdir -p out/logs/pci-disk && printf '%s\n' "$DISKTEXT" >out/logs/pci-disk/hello.txt
if mke2fs -q -t ext2 -d out/logs/pci-disk -L exitless "$disk" 4M >/dev/null; then
	PCIALSO=(--also "$V3ITS" --also "exitless-guest: disk file says: $DISKTEXT"
		--also "exitless-guest: virtio disk MSI modes: msix"
		--also "exitless-guest: virtio ITS MSIs rose from [0-9]+ to [0-9]+"
		--forbid "insmod .* failed")
	PCIDISK=(-- -device virtio-blk-pci,drive=disk0
		-drive if=none,id=disk0,format=raw,file="$disk",readonly=on)
	linux linux-pci linux-pci-test 2 "$V3LINE" --smp 4 "${PCIALSO[@]}" \
		--also "pci-host-generic 4010000000.pcie: ECAM at" \
		--also "virtio_blk virtio0: \\[vda\\]" \
		--also "ITS-MSI [0-9]+ Edge +virtio0-req" \
		--also "MSI [1-9][0-9]* \\(physical LPIs of owned PCI functions\\)" \
		"${PCIDISK[@]}"
	# The same on a GICv4 host: the disk's MSI-X vectors are virtual LPIs the physical ITS
	# injects into the running vCPU, no exit, no list register (exitless injected 0 MSIs).
	linux linux-pci-gicv4 linux-pci-test 2 "$V3LINE" --gic 4 --smp 4 "${PCIALSO[@]}" \
		--also "VM 'linux': its PCI devices' MSIs are injected directly \\(GICv4: 2 vPEs mapped\\)" \
		--also "MSI 0 \\(physical LPIs of owned PCI functions\\)" \
		--also "direct injection \\(GICv4\\): [1-9][0-9]* events of owned devices are vLPIs" \
		"${PCIDISK[@]}"
else
	echo "FAIL linux-pci: mke2fs could not make $disk"
	fails=$((fails + 1))
fi
linux linux-gicv3-smp4 linux-smp4-test 4 \
	"GICv3: CPU3: found redistributor 3 region 0:0x0000000008100000" --smp 4 --cpu cortex-a72
# vGICv2 on a GICv2 host: QEMU virt gic-version=2 and the Raspberry Pi 4 (GIC-400) under QEMU 10.
# Linux's GICv2 driver (irq-gic.c) prints no banner at EL1: its chip name in /proc/interrupts
# ("GIC-0"; the GICv3 driver's is "GICv3") and the root handler show which driver took the GIC.
V2ALSO=(--also "Root IRQ handler: gic_handle_irq" --forbid "GICv3")
linux linux-gicv2-a72 linux-v2-test 2 "$V2LINE" --gic 2 --smp 4 --cpu cortex-a72 "${V2ALSO[@]}"
linux linux-rpi4b linux-v2-test 2 "$V2LINE" --machine raspi4b "${V2ALSO[@]}"
# The same passthrough on a vGICv2: the route is GICD_ITARGETSR.
linux linux-v2-passthrough linux-v2-passthrough-test 2 "$V2LINE" --gic 2 --smp 4 \
	"${V2ALSO[@]}" "${PTALSO[@]}"
# The Raspberry Pi 4 SD card (make rpi4) as the firmware would use it: the unmodified Debian
# DTB, whose stdout-path names the mini UART; exitless sets up UART0 (QEMU's first serial port,
# GPIO 14/15 on the board) and uses it instead. The rpi4 bundle, an interactive shell reached
# through console input, and `poweroff` typed there powering everything off. QEMU does not run
# the firmware, so the test passes cmdline.txt as the firmware would (/chosen/bootargs).
sd=$(bash scripts/mk-rpi4-sd.sh) || fails=$((fails + 1))
check $T rpi4-sdcard --machine raspi4b --kernel "$sd/exitless.img" --dtb "$sd/bcm2711-rpi-4-b.dtb" \
	--initrd "$sd/exitless.cpio" --append "$(cat "$sd/cmdline.txt")" --serial 0 --exit --timeout 300 \
	--expect "starting at EL2 \\(non-VHE\\) on \"Raspberry Pi 4 Model B\", image at 0x200000" \
	--expect "$PICONSOLE" \
	--expect "VM 'linux': 2 vCPUs.*vGICv2" --expect "exitless-guest: interactive shell" \
	--send 4 "poweroff"$'\n' --expect "exitless-guest: poweroff" \
	--expect "VM 'linux' powered off" --expect "all VMs are off" \
	--forbid "ignoring unknown option"
# A console whose device-tree node has no interrupt: CPU 0 polls it, and typing still works.
dtb=$(bash scripts/rpi4-dtb.sh) && cp "$dtb" out/logs/rpi4-noirq.dtb &&
	fdtput -d out/logs/rpi4-noirq.dtb /soc/serial@7e201000 interrupts || fails=$((fails + 1))
b=$(bash scripts/mk-default-bundle.sh linux-v2) || fails=$((fails + 1))
check $T rpi4-console-polled --machine raspi4b --dtb out/logs/rpi4-noirq.dtb --initrd "$b" \
	--exit --timeout 300 --expect "exitless-guest: interactive shell" \
	--send 1 "echo polled-\$((6*7))"$'\n' --expect "polled-42" \
	--send 2 "poweroff"$'\n' --expect "all VMs are off"
# Two VMs at once (2 vCPUs each on CPUs 0-1 and 2-3), output in whole lines prefixed with their
# names (never two VMs on one line); the machine powers off when the second one does.
b=$(bash scripts/mk-default-bundle.sh two-vms-test) || fails=$((fails + 1))
check $T two-vms --smp 4 --mem 2G --initrd "$b" --exit --timeout 300 \
	--also "\\[alpha\\] exitless-guest: arch_timer and IPI counts rose on all 2 CPUs" \
	--also "\\[beta\\] exitless-guest: arch_timer and IPI counts rose on all 2 CPUs" \
	--also "VM 'alpha' powered off" --also "VM 'beta' powered off" \
	--forbid "\\[(alpha|beta)\\] [^\\n]*\\[(alpha|beta)\\] " \
	--expect "exit path: 0 heap allocations" \
	--expect "all VMs are off: powering the machine off"
# The fatal-error policy (README "Isolation"): exitless breaks on purpose while handling one
# VM's exit (exitless.test_fatal, a panic, then an EL2 data abort): the report is printed, only
# that VM stops, the other boots to the end, and the machine powers off when it does.
fatal_case() { # name append report failed-vm its-cpu survivor
	check $T "$1" --smp 4 --mem 2G --initrd "$b" --exit --timeout 300 --allow-fatal \
		--append "$2" --expect "$3" \
		--expect "\\*\\*\\* VM '$4' stopped: exitless failed on CPU $5 while running its vCPU; the other VMs go on" \
		--expect "\\[$6\\] exitless-guest: arch_timer and IPI counts rose on all 2 CPUs" \
		--expect "VM '$6' powered off" --expect "all VMs are off: powering the machine off"
}
fatal_case fatal-panic-contained "exitless.test_fatal=alpha" \
	"\\*\\*\\* PANIC on CPU 0 at .*: exitless.test_fatal: a panic on purpose" alpha 0 beta
fatal_case fatal-el2-contained "exitless.test_fatal=beta:el2" "\\*\\*\\* EL2 exception: " beta 2 alpha
# A vGICv2 guest on a GICv3 host without GICv2 compatibility (no GICV frame): a clear error.
b=$(bash scripts/mk-default-bundle.sh linux-v2-test) || fails=$((fails + 1))
check $T vgicv2-on-gicv3 --gic 3 --smp 4 --mem 2G --initrd "$b" --exit \
	--expect "VM 'linux'.*GICv2.*(compatib|GICV)"

# A configuration cannot give a VM what exitless owns: a passthrough range over the host's GIC
# distributor, its console UART or its RAM is refused at boot, naming both. (The VM's own
# regions are moved away from virt's addresses, so that only the host check can refuse it.)
mkdir -p out/logs/owned
head -c 4096 /dev/zero >out/logs/owned/Image
for c in "gicd 0x08000000 the host's GIC distributor \\(GICD\\)" \
	"uart 0x09000000 the console UART exitless uses" \
	"ram 0x41000000 RAM \\(exitless's and its VMs'\\)"; do
	read -r name base what <<<"$c"
	cat >"out/logs/owned/$name.toml" <<-EOF
		[[vm]]
		name = "thief"
		memory = "64M"
		kernel = "Image"
		[vm.layout]
		ram_base = 0x100000000
		gicd = 0x20000000
		gicr = 0x20100000
		its = 0x22000000
		uart = 0x23000000
		[[vm.passthrough]]
		name = "loot"
		mmio = [$base, 0x1000]
	EOF
	python3 scripts/mkbundle.py "out/logs/owned/$name.cpio" "out/logs/owned/$name.toml" \
		out/logs/owned/Image >/dev/null || fails=$((fails + 1))
	check $T "host-owned-$name" --smp 2 --mem 2G --initrd "out/logs/owned/$name.cpio" --exit \
		--expect "passthrough device 'loot' of VM 'thief': mmio \\[0x0*${base#0x}-[^]]*\\] overlaps $what at .*exitless keeps it for itself"
done

# The console: input reaches the guest's shell (through the physical UART's interrupt and the
# virtual PL011), the command key prints the counters and the hypervisor's log (its log ring, from
# the boot banner on) on demand, `reboot` typed at the shell
# restarts the VM (the guest's init -> PSCI SYSTEM_RESET: images reloaded, vCPU 0 started again,
# Linux boots again), `poweroff` stops it (PSCI SYSTEM_OFF: counters, then the machine is off).
b=$(bash scripts/mk-default-bundle.sh linux) || fails=$((fails + 1))
check $T linux-console --smp 2 --mem 2G --initrd "$b" --exit --timeout 300 \
	--expect "exitless-guest: interactive shell" \
	--send 1 "echo hello-\$((6*7))"$'\n' --expect "hello-42" \
	--send 2 $'\x1dc' --expect "=== counters of VM 'linux' ===" \
	--expect "exits for interrupt acknowledge and completion .*: 0" \
	--send 4 $'\x1dl' --expect "=== hypervisor log \\([0-9]+ bytes no longer kept; 0 bytes the UART dropped\\) ===" \
	--expect "exitless [0-9.]+ starting at EL2" --expect "=== end of the hypervisor log ===" \
	--send 7 "reboot"$'\n' --expect "exitless-guest: reboot" \
	--expect "VM 'linux': SYSTEM_RESET: restarting" \
	--expect "Booting Linux" --expect "exitless-guest: interactive shell" \
	--send 11 "poweroff"$'\n' --expect "exitless-guest: poweroff" \
	--expect "VM 'linux' powered off" --expect "=== counters of VM 'linux' ===" \
	--expect "exits for interrupt acknowledge and completion .*: 0" \
	--expect "exit path: 0 heap allocations" \
	--expect "all VMs are off: powering the machine off"

# A guest reboot keeps passthrough working: an RTC alarm routed to vCPU 1 is counted, the VM
# reboots (SYSTEM_RESET rebuilds its vGIC), and an alarm routed to vCPU 0 is counted again and
# taken on vCPU 0's CPU: the reset kept the link and brought the physical route back (without
# them the second alarm arrives on CPU 1 and needs a kick: "1 taken on another vCPU's CPU").
alarm() { # CPU: route the RTC's interrupt there, ring once, print the count
	printf '%s' "echo $1 >/proc/irq/\$(awk '/pl031/ { sub(\":\", \"\", \$1); print \$1 }' /proc/interrupts)/smp_affinity_list; echo +1 >/sys/class/rtc/rtc0/wakealarm; sleep 3; echo alarms-\$(awk '/pl031/ { s = 0; for (i = 2; i <= NF && \$i ~ /^[0-9]+\$/; i++) s += \$i; print s }' /proc/interrupts)"
}
b=$(bash scripts/mk-default-bundle.sh linux-passthrough) || fails=$((fails + 1))
check $T passthrough-reboot --smp 2 --mem 2G --initrd "$b" --exit --timeout 300 \
	--expect "exitless-guest: interactive shell" --send 1 "$(alarm 1)"$'\n' --expect "alarms-[1-9]" \
	--send 2 "reboot"$'\n' --expect "VM 'linux': SYSTEM_RESET: restarting" \
	--expect "exitless-guest: interactive shell" --send 4 "$(alarm 0)"$'\n' --expect "alarms-[1-9]" \
	--send 5 "poweroff"$'\n' --expect "VM 'linux' powered off" \
	--expect "passthrough SPI [1-9][0-9]* \\(0 taken on another vCPU's CPU\\)" \
	--expect "all VMs are off: powering the machine off"

# U-Boot (Debian's u-boot-qemu) as the boot loader, as on a board: exitless is an arm64 Image
# that `booti` starts at EL2 with U-Boot's DTB in x0 and the bundle as the initrd.
UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin
# With no typing: U-Boot's default boot finds the image and the bundle that QEMU hands it
# (fw_cfg) and runs booti itself. GICv3 and GICv2.
linux uboot-gicv3 linux-test 2 "$V3LINE" --smp 4 --bios "$UBOOT" --also "U-Boot 20"
linux uboot-gicv2 linux-v2-test 2 "$V2LINE" --gic 2 --smp 4 --bios "$UBOOT" --also "U-Boot 20" \
	"${V2ALSO[@]}"
# Typed at the U-Boot prompt, the README's recipe: the image and the bundle placed in RAM by
# the board's loader (here QEMU's), then `booti <image> <bundle>:<size in hex> <fdt>`; the shell
# is left with `exit`. Then the user's slip: `-` as the initrd gets the message with the fix.
b=$(bash scripts/mk-default-bundle.sh linux) || fails=$((fails + 1))
size=$(printf '%x' "$(stat -c %s "$b")")
LOADERS=(-device loader,file=out/exitless.bin,addr=0x40200000,force-raw=on
	-device "loader,file=$b,addr=0x48000000,force-raw=on")
check $T uboot-booti-typed --smp 4 --mem 2G --no-kernel --bios "$UBOOT" --exit --timeout 300 \
	--expect "Hit any key to stop autoboot" --send 1 $'\n' --expect "=> " \
	--send 2 "booti 0x40200000 0x48000000:$size \${fdtcontroladdr}"$'\n' \
	--expect "starting at EL2 \\(non-VHE\\)" --expect "VM 'linux': 2 vCPUs" \
	--expect "exitless-guest: interactive shell" --send 5 "exit"$'\n' \
	--expect "exitless-guest: shell exited, powering off" --expect "VM 'linux' powered off" \
	--expect "all VMs are off: powering the machine off" \
	-- "${LOADERS[@]}"
check $T uboot-booti-no-bundle --smp 4 --mem 2G --no-kernel --bios "$UBOOT" --exit --timeout 120 \
	--expect "Hit any key to stop autoboot" --send 1 $'\n' --expect "=> " \
	--send 2 "booti 0x40200000 - \${fdtcontroladdr}"$'\n' \
	--expect "no VM bundle: the boot loader loaded no initrd" \
	--expect "U-Boot \`booti <image addr> <bundle addr>:<bundle size in hex> <fdt addr>\` \\(the bundle is the second argument, not \`-\`\\)" \
	-- "${LOADERS[@]}"

if ((fails)); then
	echo "boot tests: $fails failed"
	exit 1
fi
echo "boot tests: all passed"
