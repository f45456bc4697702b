#!/usr/bin/env bash
# The Debian package under a real systemd: boots a minimal Debian (debootstrap) in
# systemd-nspawn, installs target/debian/*.deb there, and checks the service end to end:
# a start without a model fails with exit 2 and is not restarted; with the model it reaches
# READY (active/running, STATUS "serving"); a two-leg AudioSocket call of the demo call is
# transcribed inside the sandbox; systemctl reload re-reads the config; SIGKILL is restarted; a
# stopped (SIGSTOP) process is killed by the watchdog (WatchdogSec=30s) and restarted; a
# stop is clean; a reinstall keeps an edited conffile. Run as root on a Debian-like host:
#
#   cargo build --release && cargo deb --no-build --strip
#   tools/systemd-check.sh [ROOT]        # ROOT: the container tree (default /tmp/calltone-nspawn-root)
#
# Needs debootstrap, systemd-container (systemd-nspawn), python3, sox, mosquitto-clients,
# curl; reaches the Debian archive for debootstrap. The container shares the host's network:
# the service listens on 127.0.0.1 ports 18480-18492. Takes about 3 min (debootstrap, once)
# + 1.5 min.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="${1:-/tmp/calltone-nspawn-root}"
DEB=$(ls -t target/debian/calltone_*.deb 2>/dev/null | head -1)
MODEL=models/ggml-tiny.en.bin
die() { echo "systemd-check: $1" >&2; exit "${2:-1}"; }
[ "$(id -u)" -eq 0 ] || die "run as root" 2
[ -n "$DEB" ] || die "no target/debian/calltone_*.deb; run cargo deb --no-build --strip" 2
[ -f "$MODEL" ] || die "$MODEL missing; run models/fetch-offline.sh" 2
for t in debootstrap systemd-nspawn python3 sox mosquitto_sub curl; do
    command -v "$t" >/dev/null || die "$t not found (apt packages debootstrap systemd-container python3 sox mosquitto-clients curl)" 2
done
ok() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILED=1; }
FAILED=0

if [ ! -x "$ROOT/usr/lib/systemd/systemd" ]; then
    echo "debootstrap bookworm into $ROOT ..."
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libasound2,libstdc++6,procps \
        bookworm "$ROOT" http://deb.debian.org/debian >/dev/null
fi
STAGE="$ROOT/mnt/calltone-check"
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp "$DEB" "$STAGE/calltone.deb"
cp "$MODEL" "$STAGE/model.bin"
# nspawn wants /run/systemd/nspawn on a tmpfs (hosts whose /run is not one).
mkdir -p /run/systemd/nspawn
mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn
systemd-nspawn -D "$ROOT" --machine=calltone-check --register=no --keep-unit --console=pipe -b \
    >"$ROOT.boot.log" 2>&1 &
NSPAWN=$!
# The container halts on its own after `poweroff`; SIGTERM twice makes nspawn end it now.
stop_container() {
    for _ in $(seq 50); do kill -0 "$NSPAWN" 2>/dev/null || return 0; sleep 0.2; done
    kill "$NSPAWN" 2>/dev/null; sleep 1; kill "$NSPAWN" 2>/dev/null; wait "$NSPAWN" 2>/dev/null || true
}
trap stop_container EXIT
LEADER=""
# A command inside the container (its mount, PID, IPC and UTS namespaces).
ct() { nsenter -t "$LEADER" -m -u -i -p -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
for _ in $(seq 150); do
    LEADER=$(ps -o pid= --ppid "$NSPAWN" | tr -d ' ' | head -1 || true)
    [ -n "$LEADER" ] && case "$(ct systemctl is-system-running 2>/dev/null)" in running | degraded) break ;; esac
    sleep 0.2
done
case "$(ct systemctl is-system-running 2>/dev/null)" in
    running | degraded) ;;
    *) die "container did not boot: $(tail -3 "$ROOT.boot.log")" ;;
esac
show() { ct systemctl show calltone -p "$1" --value; }

ct dpkg --purge calltone >/dev/null 2>&1 || true
ct rm -rf /var/lib/calltone
ct dpkg -i /mnt/calltone-check/calltone.deb >/tmp/calltone-check-dpkg.log 2>&1 \
    && ok "dpkg -i: $(grep -c . /tmp/calltone-check-dpkg.log) lines, user $(ct id -un calltone)" || fail "dpkg -i: $(tail -3 /tmp/calltone-check-dpkg.log)"
ct sed -i 's/127.0.0.1:8080/127.0.0.1:18480/; s/127.0.0.1:8081/127.0.0.1:18481/; s/127.0.0.1:9092/127.0.0.1:18492/; s/127.0.0.1:1883/127.0.0.1:18483/' /etc/calltone/calltone.toml

ct systemctl start calltone 2>/dev/null || true
[ "$(show ExecMainStatus)" = 2 ] && [ "$(show NRestarts)" = 0 ] \
    && ok "no model: exit 2, not restarted" || fail "no model: status $(show ExecMainStatus), restarts $(show NRestarts)"

ct install -m 0644 /mnt/calltone-check/model.bin /var/lib/calltone/models/ggml-tiny.en.bin
t0=$(date +%s%N)
ct systemctl start calltone
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(show SubState)" = running ] && [ "$(show StatusText)" = serving ] \
    && ok "start: READY after ${ms} ms (active/running, STATUS=serving, user $(show User))" || fail "start: $(show SubState) $(show StatusText)"
curl -fsS -o /dev/null http://127.0.0.1:18480/healthz && ok "healthz 200" || fail "healthz"

timeout 40 mosquitto_sub -h 127.0.0.1 -p 18483 -t 'calltone/+/+/calls/+/utterance' >"$STAGE/utt.jsonl" 2>/dev/null &
SUB=$!
sleep 1
python3 - 18492 demo/demo-call.wav 16 <<'PY'
import socket, struct, subprocess, sys, time, uuid
port, wav, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
raw = subprocess.run(["sox", wav, "-t", "raw", "-r", "8000", "-b", "16", "-e", "signed", "-c", "2", "-"],
                     check=True, capture_output=True).stdout
n = min(len(raw) // 4, int(seconds * 8000))
legs = [b"".join(raw[4*i+2*c:4*i+2*c+2] for i in range(n)) for c in (0, 1)]
u = uuid.uuid4().bytes
frame = lambda kind, p: bytes([kind]) + struct.pack(">H", len(p)) + p
socks = []
for _ in range(2):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(frame(1, u)); socks.append(s); time.sleep(0.2)
t0 = time.time()
for k, start in enumerate(range(0, n, 160)):
    for s, leg in zip(socks, legs):
        s.sendall(frame(0x10, leg[2*start:2*(start+160)].ljust(320, b"\0")))
    w = t0 + (k + 1) * 0.02 - time.time()
    if w > 0: time.sleep(w)
time.sleep(2)
for s in socks: s.sendall(frame(0, b""))
PY
sleep 4
kill $SUB 2>/dev/null || true
words=$(python3 -c "import json,sys; print(sum(len(json.loads(l)['words']) for l in open(sys.argv[1]) if l.strip()))" "$STAGE/utt.jsonl")
[ "$words" -gt 10 ] && ok "AudioSocket call: $(grep -c . "$STAGE/utt.jsonl") utterances, $words words transcribed in the sandbox" \
    || fail "AudioSocket call: $words words"

ct systemctl reload calltone; sleep 1
[ "$(show SubState)" = running ] && ct journalctl -u calltone | grep -c "SIGHUP: configuration reloaded" >/dev/null \
    && ok "systemctl reload: config re-read, still running" || fail "reload"
ct systemctl kill -s KILL calltone; sleep 4
[ "$(show SubState)" = running ] && [ "$(show NRestarts)" = 1 ] && ok "SIGKILL: restarted" || fail "SIGKILL: $(show SubState) restarts $(show NRestarts)"
ct systemctl kill -s STOP calltone
t0=$SECONDS
while [ "$(show NRestarts)" = 1 ] && [ $((SECONDS - t0)) -lt 45 ]; do sleep 1; done
ct journalctl -u calltone | grep -c "Watchdog timeout" >/dev/null && [ "$(show NRestarts)" = 2 ] \
    && ok "SIGSTOP: watchdog timeout after $((SECONDS - t0)) s, restarted" || fail "watchdog"
for _ in $(seq 50); do [ "$(show SubState)" = running ] && break; sleep 0.2; done
ct systemctl stop calltone
[ "$(show Result)" = success ] && [ "$(show ExecMainStatus)" = 0 ] && ok "stop: clean exit 0" || fail "stop: $(show Result) $(show ExecMainStatus)"
ct dpkg -i /mnt/calltone-check/calltone.deb >/dev/null 2>&1
ct grep -q 18480 /etc/calltone/calltone.toml && ok "reinstall keeps the edited conffile" || fail "conffile replaced"
ct systemctl stop calltone
ct systemctl poweroff >/dev/null 2>&1 || true
[ "$FAILED" = 0 ] && echo "systemd-check: all passed" || { echo "systemd-check: FAILED"; exit 1; }
