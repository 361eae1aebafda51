#!/usr/bin/env bash
# The fleet demo, all on this machine: a signed fleet repository, an eddy-hub, and $DEVICES (20)
# eddyd processes with an app each. A good release rolls out step by step (10%, 50%, 100%) as
# the devices report healthy; then a bad release (its health check fails everywhere) halts in its
# first step, the devices of that step roll back, and no other device ever installs it.
# Usage: scripts/demo.sh [BUILD_DIR]   (scripts/demo-device.sh shows one device up close)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
eddyd=$build/daemon/eddyd
eddy=$build/cli/eddy
hub=$build/fleet/eddy-hub
devices=${DEVICES:-20}
for exe in "$eddyd" "$eddy" "$hub"; do
  [ -x "$exe" ] || { echo "build first: $exe not found" >&2; exit 2; }
done

work=$(mktemp -d /tmp/eddy-fleet-demo-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '   %s\n' "$*"; }
fail() { echo "demo failed: $*" >&2; echo "logs were in $work (kept)" >&2; trap - EXIT; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export GIT_CONFIG_NOSYSTEM=1 HOME=$work/home GIT_AUTHOR_NAME="Fleet Admin" GIT_AUTHOR_EMAIL=fleet@example.com \
  GIT_COMMITTER_NAME="Fleet Admin" GIT_COMMITTER_EMAIL=fleet@example.com
mkdir -p "$HOME"

say "A fleet repository signed with an SSH key"
ssh-keygen -q -t ed25519 -N "" -C fleet-admin -f "$work/signing-key"
echo "fleet@example.com $(cat "$work/signing-key.pub")" > "$work/allowed_signers"
git init -q -b main "$work/fleet"
git -C "$work/fleet" config gpg.format ssh
git -C "$work/fleet" config user.signingkey "$work/signing-key"
mkdir -p "$work/fleet/releases" "$work/fleet/rollouts" "$work/fleet/payloads"
step "repository: $work/fleet"

# The app: a tiny web service. Each device runs it on its own port, written by the device's
# owner into <app dir>/port (the process runs in <app dir>/versions/<version>/). Its health
# check is part of the bundle: bin/healthcheck asks /healthz, which a healthy version serves.
make_bundle() {  # version healthy(yes|no)
  local version=$1 healthy=$2 dir=$work/bundle-$1
  mkdir -p "$dir/bin" "$dir/www"
  cat > "$dir/bin/sensor-app" <<'APP'
#!/bin/sh
exec python3 -m http.server "$(cat ../../port)" --bind 127.0.0.1 --directory www
APP
  cat > "$dir/bin/healthcheck" <<'CHECK'
#!/usr/bin/env python3
import sys, urllib.request
port = open("../../port").read().strip()
try:
    urllib.request.urlopen("http://127.0.0.1:%s/healthz" % port, timeout=2).read()
except Exception as e:
    sys.exit("healthz: %s" % e)
CHECK
  chmod +x "$dir/bin/sensor-app" "$dir/bin/healthcheck"
  echo "sensor-app $version" > "$dir/www/index.html"
  [ "$healthy" = yes ] && echo "ok $version" > "$dir/www/healthz"
  tar -C "$dir" -cf - . | zstd -q -19 -o "$work/fleet/payloads/sensor-app-$version.tar.zst"
}
publish() {  # version message
  local version=$1 file=payloads/sensor-app-$1.tar.zst
  cat > "$work/fleet/releases/sensor-app-$version.yaml" <<REL
apiVersion: eddy/v1
kind: Release
metadata: {name: sensor-app-$version}
spec:
  target: sensor-app
  version: $version
  payload:
    type: app
    path: $file
    sha256: $(sha256sum "$work/fleet/$file" | cut -d' ' -f1)
    size: $(stat -c %s "$work/fleet/$file")
  analysis:
    interval: 2s          # the first check comes one interval after the start
    iterations: 3
    threshold: 1          # a slow first start may fail once; a broken version fails every time
    probes:
      - {name: health, exec: {command: [bin/healthcheck], timeout: 5s}}
REL
  cat > "$work/fleet/rollouts/sensor-app.yaml" <<ROL
apiVersion: eddy/v1
kind: Rollout
metadata: {name: sensor-app}
spec:
  release: sensor-app-$version
  selector: {matchLabels: {site: demo}}
  steps: [10, 50, 100]
  bake: 2s
  minDevices: 2
  maxFailureRate: 10%
  onFailure: rollback
  progressDeadline: 2m
ROL
  git -C "$work/fleet" add -A
  git -C "$work/fleet" commit -q -S -m "$2"
}

say "eddy-hub: follows the repository, gates each step on the fleet's health"
mkdir -p "$work/hub"
hub_port=$(free_port)
hub_url=http://127.0.0.1:$hub_port
operator_token=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
echo "demo-operator $operator_token" > "$work/hub/operator-tokens"
: > "$work/hub/device-tokens"
for i in $(seq -w 1 "$devices"); do
  echo "pi-$i $(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >> "$work/hub/device-tokens"
done
cat > "$work/hub/hub.yaml" <<CFG
listen: "127.0.0.1:$hub_port"     # plain HTTP is allowed on loopback only
source: {url: "file://$work/fleet", branch: main, interval: 1s, allowed_signers: $work/allowed_signers}
data_dir: $work/hub/data
devices: {tokens: $work/hub/device-tokens}
operators: {tokens: $work/hub/operator-tokens}
tick: 1s
CFG
"$hub" --config "$work/hub/hub.yaml" > "$work/hub/eddy-hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do [ -f "$work/hub/data/url" ] && break; sleep 0.05; done
[ -f "$work/hub/data/url" ] || { cat "$work/hub/eddy-hub.log"; fail "eddy-hub did not start"; }
step "hub: $hub_url   web view: $hub_url/#token=$operator_token"
export EDDY_HUB=$hub_url EDDY_TOKEN=$operator_token

say "$devices devices: one eddyd each, labelled site=demo"
while read -r id token; do
  dir=$work/devices/$id
  mkdir -p "$dir/sensor-app"
  free_port > "$dir/sensor-app/port"
  echo "$token" > "$dir/token"
  hw=pi4; [ $((10#${id#pi-} % 3)) = 0 ] && hw=pi5
  cat > "$dir/eddyd.yaml" <<CFG
device:
  id: $id
  labels: {site: demo, hw: $hw}
source:
  url: file://$work/fleet
  branch: main
  interval: 1s
  allowed_signers: $work/allowed_signers
hub:
  url: $hub_url
  token_file: $dir/token
data_dir: $dir/data
socket: $dir/eddyd.sock
apps:
  sensor-app:
    dir: $dir/sensor-app
    run: [bin/sensor-app]
CFG
  "$eddyd" --config "$dir/eddyd.yaml" > "$dir/eddyd.log" 2>&1 &
  pids+=($!)
done < "$work/hub/device-tokens"
step "devices: $work/devices/pi-NN (config, log, data); each app on its own port"

version_of() { "$eddy" --socket "$work/devices/$1/eddyd.sock" status --json 2>/dev/null |
  python3 -c 'import json,sys; t=[t for t in json.load(sys.stdin)["targets"] if t["name"]=="sensor-app"]; print(t[0].get("current_version") or "-" if t else "-")' 2>/dev/null || echo "?"; }
tally() {  # "1.0.0: 12  -: 8"
  for d in "$work"/devices/*; do version_of "$(basename "$d")"; done | sort | uniq -c | awk '{printf "%s: %s  ", $2, $1}'
}
watch_rollout() {  # RELEASE: until its rollout is complete (0) or halted (4); prints each change
  local last="" line rc
  for _ in $(seq 1 600); do
    rc=0
    line=$("$eddy" rollout status sensor-app --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
if r.get("release") != sys.argv[1]:
    print("waiting for the hub to see %s" % sys.argv[1]); sys.exit(1)
d = r["devices"]
print("%-11s step %d/%d (%g%%)  admitted %d/%d  ok %d  failed %d  in progress %d  no data %d" % (
    r["state"], r["step"] + 1, len(r["steps"]), r["percent"], r["admitted"], r["selected"],
    d["succeeded"], d["failed"], d["in_progress"], d["no_data"]))
sys.exit({"complete": 0, "halted": 4, "rolled-back": 4}.get(r["state"], 1))' "$1") || rc=$?
    if [ "$line" != "$last" ]; then step "$line"; last=$line; fi
    [ "$rc" = 0 ] || [ "$rc" = 4 ] && return "$rc"
    sleep 0.5
  done
  fail "the rollout did not finish within 5 minutes"
}

say "v1: sensor-app 1.0.0, rolled out in steps of 10%, 50%, 100%"
make_bundle 1.0.0 yes
publish 1.0.0 "sensor-app 1.0.0 to the demo fleet"
watch_rollout sensor-app-1.0.0 || fail "1.0.0 did not complete"
step "devices per version: $(tally)"
"$eddy" rollout status sensor-app | sed 's/^/   | /'

say "v2: sensor-app 2.0.0, whose health check fails on every device"
make_bundle 2.0.0 no
publish 2.0.0 "sensor-app 2.0.0 (broken /healthz)"
rc=0; watch_rollout sensor-app-2.0.0 || rc=$?
[ "$rc" = 4 ] || fail "2.0.0 was not halted"
# The devices of the first step roll back on their own (their analysis fails) and on the hub's
# order; wait until every device runs 1.0.0 again.
for _ in $(seq 1 300); do [ "$(tally)" = "1.0.0: $devices  " ] && break; sleep 0.2; done
"$eddy" rollout status sensor-app | sed 's/^/   | /' || true
step "devices per version: $(tally)"
[ "$(tally)" = "1.0.0: $devices  " ] || fail "not every device is back on 1.0.0"
# The blast radius, from each device's own journal: which devices ever downloaded 2.0.0, and
# which ever ran it (reached `activating`).
ran=(); downloaded=()
for d in "$work"/devices/*; do
  what=$("$eddy" --socket "$d/eddyd.sock" history --json -n 10000 | python3 -c '
import json, sys
entries = json.load(sys.stdin)["entries"]
tos = {e.get("to") for e in entries if e.get("kind") == "transition" and e.get("release") == "sensor-app-2.0.0"}
print("ran" if "activating" in tos else "downloaded" if "downloading" in tos else "never")')
  case $what in ran) ran+=("$(basename "$d")") ;; downloaded) downloaded+=("$(basename "$d")") ;; esac
done
step "blast radius: ${#ran[@]} of $devices devices ever ran 2.0.0 (${ran[*]:-none}), ${#downloaded[@]} more downloaded it without running it; the hub admitted $(
  "$eddy" rollout status sensor-app --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["admitted"])'), every other device never fetched it"
[ "$(( ${#ran[@]} + ${#downloaded[@]} ))" -lt "$devices" ] || fail "2.0.0 reached every device"

say "Done"
echo "   The same rollout runs in the test suite (tests/e2e/hub_test.cpp). Files were in $work (removed now)."
