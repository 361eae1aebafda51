#!/usr/bin/env bash
# Single-device demo: a signed fleet repository in a temporary folder, one eddyd following it,
# and three releases: v1 installs and is healthy, an unsigned v2 is refused, and a v3 whose
# health probe fails is rolled back to v1. Usage: scripts/demo-device.sh [BUILD_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
eddyd=$build/daemon/eddyd
eddy=$build/cli/eddy
[ -x "$eddyd" ] && [ -x "$eddy" ] || { echo "build first: eddyd/eddy not found in $build" >&2; exit 2; }

work=$(mktemp -d /tmp/eddy-demo-XXXXXX)
eddyd_pid=""
cleanup() {
  if [ -n "$eddyd_pid" ]; then kill "$eddyd_pid" 2>/dev/null || true; wait "$eddyd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '   %s\n' "$*"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GIT_CONFIG_NOSYSTEM=1 HOME=$work/home GIT_AUTHOR_NAME="Fleet Admin" GIT_AUTHOR_EMAIL=fleet@example.com \
  GIT_COMMITTER_NAME="Fleet Admin" GIT_COMMITTER_EMAIL=fleet@example.com
mkdir -p "$HOME"

say "A fleet repository signed with an SSH key"
ssh-keygen -q -t ed25519 -N "" -C fleet-admin -f "$work/signing-key"
echo "fleet@example.com $(cat "$work/signing-key.pub")" > "$work/allowed_signers"
git init -q -b main "$work/fleet"
git -C "$work/fleet" config gpg.format ssh
git -C "$work/fleet" config user.signingkey "$work/signing-key"
step "repository: $work/fleet (commits signed by $(ssh-keygen -lf "$work/signing-key.pub" | cut -d' ' -f2))"

# An app bundle: a tiny web service whose /healthz answers for a healthy version.
make_bundle() {  # version healthy(yes|no)
  local version=$1 healthy=$2 dir=$work/bundle-$1
  mkdir -p "$dir/bin" "$dir/www"
  cat > "$dir/bin/sensor-app" <<APP
#!/bin/sh
exec python3 -m http.server $port --bind 127.0.0.1 --directory www
APP
  chmod +x "$dir/bin/sensor-app"
  echo "sensor-app $version" > "$dir/www/index.html"
  [ "$healthy" = yes ] && echo "ok $version" > "$dir/www/healthz"
  mkdir -p "$work/fleet/payloads"
  tar -C "$dir" -cf - . | zstd -q -19 -o "$work/fleet/payloads/sensor-app-$version.tar.zst"
}
write_release() {  # version
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
    interval: 1s          # the first check comes one interval after the start
    iterations: 4
    threshold: 2          # a slow first start may fail twice; a broken version fails every time
    probes:
      - {name: health, http: {url: "http://127.0.0.1:$port/healthz", status: 200, timeout: 1s}}
      - {name: port, tcp: {address: "127.0.0.1:$port", timeout: 1s}}
REL
}
write_rollout() {  # version
  cat > "$work/fleet/rollouts/sensor-app.yaml" <<ROL
apiVersion: eddy/v1
kind: Rollout
metadata: {name: sensor-app}
spec:
  release: sensor-app-$1
  selector: {matchLabels: {site: demo}}
  steps: [100]
ROL
}
mkdir -p "$work/fleet/releases" "$work/fleet/rollouts"
make_bundle 1.0.0 yes
write_release 1.0.0
write_rollout 1.0.0
git -C "$work/fleet" add -A
git -C "$work/fleet" commit -q -S -m "sensor-app 1.0.0 to every demo device"
step "v1: sensor-app 1.0.0, committed and signed"

say "One device: eddyd following the repository"
mkdir -p "$work/device"
cat > "$work/device/eddyd.yaml" <<CFG
device:
  id: demo-pi-01
  labels: {site: demo, hw: pi4}
source:
  url: file://$work/fleet
  branch: main
  interval: 1h            # the demo asks for each poll with 'eddy check'
  allowed_signers: $work/allowed_signers
data_dir: $work/device/data
socket: $work/device/eddyd.sock
apps:
  sensor-app:
    dir: $work/device/sensor-app
    run: [bin/sensor-app]
CFG
"$eddyd" --config "$work/device/eddyd.yaml" > "$work/device/eddyd.log" 2>&1 &
eddyd_pid=$!
export EDDY_SOCKET=$work/device/eddyd.sock
for _ in $(seq 1 200); do [ -S "$EDDY_SOCKET" ] && break; sleep 0.05; done
step "eddyd started (pid $eddyd_pid), log: $work/device/eddyd.log"

check() {  # prints the outcome of one poll in plain words; returns eddy's exit code
  local out rc=0
  out=$("$eddy" check --json) || rc=$?
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("   poll: %s — %s" % (r.get("outcome"), r.get("message")))' "$out" 2>/dev/null || echo "   $out"
  return $rc
}
current() { "$eddy" status --json | python3 -c 'import json,sys; t=json.load(sys.stdin)["targets"][0]; print(t.get("current_version") or "none")'; }
serving() { python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())' "http://127.0.0.1:$port/$1" 2>/dev/null || echo "(no answer)"; }

# eddyd polls once at start-up: wait for that poll to install v1 and judge its health.
for _ in $(seq 1 600); do [ "$(current 2>/dev/null)" = 1.0.0 ] && break; sleep 0.05; done
step "eddyd polled at start-up, installed sensor-app 1.0.0, and probed it for 4 s"
step "running: sensor-app $(current); http://127.0.0.1:$port/healthz says: $(serving healthz)"
[ "$(current)" = 1.0.0 ] && echo "   => v1 installed and healthy" || { echo "demo failed: v1 not installed"; cat "$work/device/eddyd.log"; exit 1; }

say "v2: an unsigned commit"
make_bundle 2.0.0 yes
write_release 2.0.0
write_rollout 2.0.0
git -C "$work/fleet" add -A
git -C "$work/fleet" commit -q --no-gpg-sign -m "sensor-app 2.0.0 (unsigned)"
if check; then echo "demo failed: the unsigned commit was accepted"; exit 1; fi
step "running: sensor-app $(current)"
echo "   => unsigned v2 refused; nothing changed"

say "v3: a signed release whose health probe fails"
make_bundle 3.0.0 no
write_release 3.0.0
write_rollout 3.0.0
git -C "$work/fleet" add -A
git -C "$work/fleet" commit -q -S -m "sensor-app 3.0.0 (broken /healthz)"
# The poll installs v3, probes it, sees /healthz fail, and rolls back before it answers.
if check; then echo "demo failed: the broken v3 was committed"; exit 1; fi
step "running: sensor-app $(current); http://127.0.0.1:$port/healthz says: $(serving healthz)"
[ "$(current)" = 1.0.0 ] && echo "   => v3 failed its health analysis and was rolled back to v1" || { echo "demo failed"; exit 1; }

say "What eddy history recorded"
"$eddy" history | tail -n 25
say "Done"
echo "   The same steps run in the test suite (tests/e2e). Files were in $work (removed now)."
