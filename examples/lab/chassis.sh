#!/bin/sh
# ipmi_sim's chassis_control for the lab's virtual machine: the BMC's
# power and boot-device commands start and stop a QEMU process, so
# bmclib -> ipmitool -> ipmi_sim -> QEMU is the whole power path.
#
#   chassis.sh VM_DIR get power [boot]   prints power:0|1 (boot:VALUE)
#   chassis.sh VM_DIR set power 1|0      starts / stops QEMU
#   chassis.sh VM_DIR set reset 1        stops and starts QEMU
#   chassis.sh VM_DIR set shutdown 1     stops QEMU (an OS obeying ACPI)
#   chassis.sh VM_DIR set boot pxe|default|...
#
# VM_DIR/vm.env sets QEMU, MAC, DISK and BOOTFILE (the URL the iPXE ROM
# fetches first). A power-on after "set boot pxe" starts QEMU with the
# network first, else from the disk; the PXE request is used once, as a
# BMC's one-time boot device is. Every call is appended to VM_DIR/calls.log.
d=$1
shift
[ -f "$d/vm.env" ] && . "$d/vm.env"
echo "$*" >> "$d/calls.log"

running() { [ -f "$d/qemu.pid" ] && kill -0 "$(cat "$d/qemu.pid")" 2>/dev/null; }

start() {
  running && return 0
  order=c
  if [ "$(cat "$d/boot" 2>/dev/null)" = pxe ]; then
    order=nc
    echo default > "$d/boot"
  fi
  echo "$(date +%s) start boot order $order" >> "$d/power.log"
  # TCG: KVM is not usable on nested machines. The serial console (the
  # kernel's console=ttyS0 and the disk's boot sector) goes to console.log.
  "$QEMU" -accel tcg -m 512 -display none -no-user-config -name tinkops-lab \
    -chardev "file,id=console,path=$d/console.log,append=on" -serial chardev:console \
    -netdev "user,id=n0,bootfile=$BOOTFILE" -device "virtio-net-pci,netdev=n0,mac=$MAC" \
    -drive "file=$DISK,format=raw,if=virtio" -boot "order=$order" \
    -daemonize -pidfile "$d/qemu.pid" >> "$d/qemu.log" 2>&1
}

stop() {
  running || { rm -f "$d/qemu.pid"; return 0; }
  pid=$(cat "$d/qemu.pid")
  echo "$(date +%s) stop" >> "$d/power.log"
  kill "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -9 "$pid" 2>/dev/null
  rm -f "$d/qemu.pid"
}

case "$1" in
get)
  shift
  for what in "$@"; do
    case "$what" in
    power) if running; then echo power:1; else echo power:0; fi ;;
    boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo default)" ;;
    esac
  done
  ;;
set)
  case "$2" in
  power) if [ "$3" = 1 ]; then start || exit 1; else stop; fi ;;
  reset) stop; start || exit 1 ;;
  shutdown) stop ;;
  boot) echo "$3" > "$d/boot" ;;
  esac
  ;;
esac
exit 0
