#!/usr/bin/env bash
# make demo: the whole tinkops loop on one machine, in about a minute.
#
# It creates a Git repository of its own (served over file://), two IPMI
# BMC simulators (ipmi_sim) standing in for two machines, tink-server with
# the embedded store, and a tink-worker per machine with the process
# runtime. It commits hardware, a template and two workflows and shows them
# run; then it commits a broken change, shows it rejected with its
# file:line error while the last good revision stays applied, and commits
# the fix. Everything it starts is stopped and removed at the end.
#
# Needs: the binaries in bin/ (make build), git, ipmi_sim (Debian's
# openipmi) and ipmitool, which .ci/run installs for the tests.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-$root/bin}
for tool in git ipmi_sim ipmitool "$bin/tink-server" "$bin/tink" "$bin/tink-worker"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "demo: $tool is missing (make build; apt-get install git openipmi ipmitool)" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tinkops-demo.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  if [ "$rc" -ne 0 ]; then echo "demo: failed (exit $rc); see the output above" >&2; fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

# Headings are bold on a terminal only: piped into a file or a CI log, raw
# escape codes would be noise. NO_COLOR turns them off too.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# wait_for CMD... : retry a check for up to 60 s.
wait_for() {
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "demo: timed out waiting for: $*" >&2; return 1
}

# ---------------------------------------------------------------- machines
say "Two machines, each with an IPMI BMC (ipmi_sim on 127.0.0.1)"
mkdir -p "$work/secrets"
declare -A bmcport
for n in 01 02; do
  d=$work/bmc-$n; mkdir -p "$d/state"
  echo 1 > "$d/power"; echo none > "$d/boot"; : > "$d/calls.log"
  # The machine behind the BMC: ipmi_sim runs this for every chassis command.
  cat > "$d/chassis" <<EOF
#!/bin/sh
d=$d
echo "\$*" >> "\$d/calls.log"
case "\$1" in
get) shift; for w in "\$@"; do case "\$w" in power) echo "power:\$(cat \$d/power)";; boot) echo "boot:\$(cat \$d/boot)";; esac; done;;
set) case "\$2" in power) echo "\$3" > "\$d/power";; boot) echo "\$3" > "\$d/boot";; shutdown) echo 0 > "\$d/power";; esac;;
esac
exit 0
EOF
  chmod 700 "$d/chassis"
  cat > "$d/bmc.emu" <<EOF
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
EOF
  password="demo-$n-$RANDOM$RANDOM"
  started=""
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    cat > "$d/lan.conf" <<EOF
name "node-$n"
set_working_mc 0x20
startlan 1
  addr 127.0.0.1 $port
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
  guid a123456789abcdefa123456789abcd$n
endlan
chassis_control "$d/chassis"
user 2 true "admin" "$password" admin 10 md5 md2 straight none
EOF
    ipmi_sim -c "$d/lan.conf" -f "$d/bmc.emu" -s "$d/state" -n >"$d/sim.log" 2>&1 &
    pid=$!; pids+=("$pid")
    if IPMITOOL_PASSWORD=$password wait_for ipmitool -I lanplus -H 127.0.0.1 -p "$port" -U admin -E -C 3 -R 1 -N 1 chassis power status; then
      started=yes; break
    fi
    kill "$pid" 2>/dev/null || true
  done
  [ -n "$started" ] || { echo "demo: ipmi_sim for node-$n did not start" >&2; exit 1; }
  bmcport[$n]=$port
  # The BMC's credentials live in the server's secrets directory, never in Git.
  mkdir -p "$work/secrets/bmc-node-$n"
  printf 'admin\n' > "$work/secrets/bmc-node-$n/username"
  printf '%s\n' "$password" > "$work/secrets/bmc-node-$n/password"
  # ... and are sent only to the BMC addresses the secret names.
  printf '127.0.0.1\n' > "$work/secrets/bmc-node-$n/allowed-hosts"
  echo "node-$n: BMC on 127.0.0.1:$port (udp), powered on; credentials in secrets/bmc-node-$n"
done

# ---------------------------------------------------------------- Git
say "A Git repository for the desired state"
git init -q --bare -b main "$work/fleet.git"
git clone -q "$work/fleet.git" "$work/fleet" 2>/dev/null
cd "$work/fleet"
git config user.name "Demo Operator"; git config user.email "operator@example.invalid"
git commit -q --allow-empty -m "Start the fleet repository"
git push -q origin main
echo "file://$work/fleet.git, branch main"

# ---------------------------------------------------------------- server
say "tink-server follows the repository (embedded store, BMC secrets directory)"
"$bin/tink-server" --repo "file://$work/fleet.git" --poll-interval 2s --listen 127.0.0.1:0 \
  --data-dir "$work/data" --secrets-dir "$work/secrets" --bmc-timeout 10s --log-format json --log-level warn \
  >"$work/server.out" 2>"$work/server.log" &
pids+=("$!")
wait_for grep -q "listening on" "$work/server.out"
addr=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/server.out")
export TINK_SERVER=$addr
echo "tink-server listening on $addr"
wait_for "$bin/tink" status

# ---------------------------------------------------------------- commit
say "Commit two machines, a template and two workflows"
mkdir -p hardware templates workflows
for n in 01 02; do
  cat > "hardware/node-$n.yaml" <<EOF
apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: node-$n
spec:
  disks: [{device: /dev/sda}]
  bmc: {address: 127.0.0.1, port: ${bmcport[$n]}, protocol: ipmi, credentialsRef: bmc-node-$n}
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:$n", hostname: node-$n, ip: {address: 10.0.0.1$n, netmask: 255.255.255.0}}
      netboot: {allowPXE: false, allowWorkflow: true}
EOF
  cat > "workflows/provision-node-$n.yaml" <<EOF
apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata:
  name: provision-node-$n
spec:
  templateRef: demo-provision
  hardwareRef: node-$n
  hardwareMap: {device_1: "52:54:00:00:00:$n"}
  bootOptions: {bootMode: netboot, toggleAllowNetboot: true}
EOF
done
cat > templates/demo-provision.yaml <<'EOF'
apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata:
  name: demo-provision
spec:
  data: |
    version: "0.1"
    name: demo-provision
    global_timeout: 120
    tasks:
      - name: os-installation
        worker: "{{.device_1}}"
        environment: {DISK: "{{ index .Hardware.Disks 0 }}"}
        actions:
          - name: wipe-disk
            image: disk-wipe:v1
            timeout: 30
            command: ["/bin/sh", "-c", "echo wiping $DISK"]
          - name: write-image
            image: image2disk:v1
            timeout: 30
            command: ["/bin/sh", "-c", "echo writing ubuntu-24.04 to $DISK; sleep 1"]
          - name: kexec
            image: kexec:v1
            timeout: 30
            command: ["/bin/sh", "-c", "echo booting the installed system"]
EOF
run "$bin/tink" validate .
git add -A && git commit -q -m "Provision node-01 and node-02" && git push -q origin main
echo "pushed $(git rev-parse --short HEAD): Provision node-01 and node-02"
run "$bin/tink" sync

# ---------------------------------------------------------------- runs
say "A tink-worker on each machine (process runtime) runs its workflow"
for n in 01 02; do
  "$bin/tink-worker" --id "52:54:00:00:00:$n" --work-dir "$work/worker-$n" --wait 2s >"$work/worker-$n.log" 2>&1 &
  pids+=("$!")
done
# succeeded WORKFLOW: its latest run ended in SUCCESS (fails the demo on
# FAILED or TIMEOUT rather than waiting).
succeeded() {
  local st
  st=$("$bin/tink" workflow list | awk -v w="$1" '$1 == w {print $5}')
  case "$st" in
  SUCCESS) return 0 ;;
  FAILED|TIMEOUT|CANCELLED) echo "demo: workflow $1 ended $st" >&2; "$bin/tink" workflow events "$1" >&2; exit 1 ;;
  esac
  return 1
}
wait_for succeeded provision-node-01
wait_for succeeded provision-node-02
run "$bin/tink" workflow list
run "$bin/tink" workflow events provision-node-01

say "What node-01's BMC was told (ipmi_sim's chassis log): off, PXE once, on"
grep '^set ' "$work/bmc-01/calls.log" | sed 's/^/  /'
run "$bin/tink" hardware list
say "toggleAllowNetboot: PXE was allowed for the run and is off again after SUCCESS"
printf '$ tink hardware get node-01 -o json | grep allowPXE\n'
"$bin/tink" hardware get node-01 -o json | grep '"allowPXE"' | tail -1

# ---------------------------------------------------------------- broken commit
say "A broken commit: a MAC address with a typo"
sed -i 's/52:54:00:00:00:02/52:54:00:00:00:0z/' hardware/node-02.yaml
git commit -q -am "node-02: new NIC" && git push -q origin main
echo "pushed $(git rev-parse --short HEAD): node-02: new NIC"
set +e
printf '$ tink sync\n'
"$bin/tink" sync
rc=$?
set -e
echo "(tink sync exited $rc: the revision has errors, nothing of it was applied)"
[ "$rc" -eq 1 ] || { echo "demo: the broken commit was not rejected" >&2; exit 1; }

say "The fix"
sed -i 's/52:54:00:00:00:0z/52:54:00:00:00:02/; s/hostname: node-02,/hostname: node-02-new,/' hardware/node-02.yaml
git commit -q -am "node-02: fix the MAC" && git push -q origin main
echo "pushed $(git rev-parse --short HEAD): node-02: fix the MAC"
run "$bin/tink" sync
run "$bin/tink" status

say "Done: every process the demo started is stopped and $work is removed"
