#!/bin/sh
# scripts/guest/init.sh: /init of the exitless guest initramfs (scripts/mk-initramfs.sh copies
# it in). Runs as PID 1 under busybox sh, in a Linux VM of exitless or on plain QEMU.
#
#   exitless.test=boot on the kernel command line: the boot self-test. Prints /proc/interrupts,
#   the GIC/ITS lines of the kernel log, runs a short task on every CPU (timer events and
#   wake-up IPIs everywhere) for 2 s, prints /proc/interrupts again, says whether the timer and
#   the IPI counts grew on every CPU, prints "exitless-guest: test done" and powers off.
#   exitless.test=poweroff: powers off at once (scripts/bench.py times a boot to power-off).
#   Otherwise: an interactive shell on the console; `poweroff` (or leaving the shell) stops the VM,
#   `reboot` restarts it.
#
# Every line it prints itself starts with "exitless-guest: " so that a test can match it.

export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "exitless-guest: init started on $(nproc) CPUs"

case " $(cat /proc/cmdline) " in
*" exitless.test=poweroff "*)
	poweroff -f
	;;
*" exitless.test=boot "*)
	echo "exitless-guest: boot self-test"
	echo "exitless-guest: /proc/interrupts (1)"
	cat /proc/interrupts
	echo "exitless-guest: kernel log, GIC lines"
	dmesg | grep -i -E 'gic|its'
	cat /proc/interrupts >/tmp/irq1
	n=$(nproc)
	for round in 1 2 3 4; do
		cpu=0
		while [ "$cpu" -lt "$n" ]; do
			taskset -c "$cpu" sleep 0.1 &
			cpu=$((cpu + 1))
		done
		wait
		sleep 0.4
	done
	cat /proc/interrupts >/tmp/irq2
	echo "exitless-guest: /proc/interrupts (2)"
	cat /tmp/irq2
	# Per CPU: the arch_timer count and the sum of all IPI counts must have grown.
	awk -v n="$n" '
		function grab(arr) {
			if ($NF == "arch_timer") for (i = 2; i <= n + 1; i++) arr["timer", i - 2] = $i
			if ($1 ~ /^IPI[0-9]+:$/) for (i = 2; i <= n + 1; i++) arr["ipi", i - 2] += $i
		}
		FNR == NR { grab(a); next }
		{ grab(b) }
		END {
			bad = ""
			for (c = 0; c < n; c++) {
				if (b["timer", c] <= a["timer", c]) bad = bad " timer/CPU" c
				if (b["ipi", c] <= a["ipi", c]) bad = bad " IPI/CPU" c
			}
			if (bad == "") print "exitless-guest: arch_timer and IPI counts rose on all " n " CPUs"
			else print "exitless-guest: counts did not rise:" bad
		}' /tmp/irq1 /tmp/irq2
	# Accesses the hypervisor must answer with an abort: the process gets SIGBUS, the VM
	# goes on.
	for mode in unowned ldp; do
		/bin/badaccess "$mode"
		echo "exitless-guest: badaccess $mode exited with status $?"
	done
	echo "exitless-guest: still running after the aborted accesses"
	# A passed-through RTC (a bundle with a [[vm.passthrough]] PL031): its alarm interrupt is
	# the physical one, linked to the guest's.
	if [ -e /sys/class/rtc/rtc0 ]; then
		echo "exitless-guest: rtc0 is $(cat /sys/class/rtc/rtc0/name), time $(hwclock -r 2>&1)"
		echo +1 >/sys/class/rtc/rtc0/wakealarm
		sleep 3
		n=$(awk '/pl031/ { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' /proc/interrupts)
		echo "exitless-guest: passed-through RTC alarm interrupts: ${n:-0}"
		# Route it to the last CPU (GICD_IROUTER/ITARGETSR: the physical SPI follows) and
		# ring again; the per-CPU counts show where each alarm was taken.
		irq=$(awk '/pl031/ { sub(":", "", $1); print $1 }' /proc/interrupts)
		last=$(($(nproc) - 1))
		if [ -n "$irq" ] && [ "$last" -gt 0 ]; then
			echo "$last" >/proc/irq/"$irq"/smp_affinity_list
			echo 0 >/sys/class/rtc/rtc0/wakealarm
			echo +1 >/sys/class/rtc/rtc0/wakealarm
			sleep 3
			per=$(awk -v n="$(nproc)" '/pl031/ { s = ""; for (i = 2; i <= n + 1; i++) s = s " " $i; print s }' /proc/interrupts)
			echo "exitless-guest: RTC alarm interrupts per CPU after routing to CPU $last:$per"
		fi
	fi
	# A virtio disk on a PCI bridge the VM owns (pci = true, QEMU's virtio-blk-pci): load the
	# drivers, read a file from its ext2 file system and show the MSI-X interrupts it took
	# through the ITS.
	if grep -q -x 0x1af4 /sys/bus/pci/devices/*/vendor 2>/dev/null; then
		for m in $(cat /lib/modules/order); do
			insmod "/lib/modules/$m.ko" || echo "exitless-guest: insmod $m failed"
		done
		i=0
		while [ ! -b /dev/vda ] && [ "$i" -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		msis() { awk '/ITS-.*virtio/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts; }
		before=$(msis)
		if mount -t ext2 -o ro /dev/vda /mnt; then
			echo "exitless-guest: disk file says: $(cat /mnt/hello.txt)"
			umount /mnt
		fi
		echo "exitless-guest: virtio disk MSI modes: $(cat /sys/bus/pci/devices/*/msi_irqs/* 2>/dev/null | sort -u | tr '\n' ' ')"
		grep -E 'ITS-.*virtio' /proc/interrupts
		after=$(msis)
		if [ "$after" -gt "$before" ]; then
			echo "exitless-guest: virtio ITS MSIs rose from $before to $after"
		else
			echo "exitless-guest: virtio ITS MSIs did not rise ($before, then $after)"
		fi
	fi
	echo "exitless-guest: test done"
	sync
	poweroff -f
	;;
esac

# The interactive shell. PID 1 stays this script, so that busybox `poweroff`, `halt` and `reboot`
# (without -f they only signal PID 1: SIGUSR2, SIGUSR1, SIGTERM, as to busybox init) work as a
# Linux user expects: the shell runs in the background and the traps below end the VM through the
# kernel (reboot(2): PSCI SYSTEM_OFF or SYSTEM_RESET, which exitless turns into stopping or
# restarting the VM). Leaving the shell (`exit`, Ctrl-D) powers the VM off too.
finish() { # poweroff|reboot
	echo "exitless-guest: $1"
	[ -n "$shell" ] && kill -HUP "$shell" 2>/dev/null
	sync
	"$1" -f
}
shell=
trap 'finish poweroff' USR1 USR2
trap 'finish reboot' TERM
echo "exitless-guest: interactive shell (busybox); 'poweroff' or 'exit' stops the VM, 'reboot' restarts it"
setsid cttyhack sh </dev/console >/dev/console 2>&1 &
shell=$!
# `wait` returns early when a trapped signal arrives; the trap then ends the VM.
while kill -0 "$shell" 2>/dev/null; do
	wait "$shell"
done
echo "exitless-guest: shell exited, powering off"
finish poweroff
