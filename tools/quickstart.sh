#!/usr/bin/env bash
# Quick start on a bare Debian/Ubuntu machine with Rust installed: checks the system packages
# the build and the tools need, installs the missing ones through apt when run as root (or
# prints one line naming them and exits 2), provisions the Whisper model
# (models/fetch-offline.sh tiny.en), builds the release binary and replays the demo call to a
# report in target/quickstart/. Safe to run again: every step is skipped or quick when done.
#
# Environment:
#   QUICKSTART_OUT             where the report goes (default target/quickstart)
#   QUICKSTART_EXTRA_PACKAGES  more apt packages to require (space-separated; the tests use it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${QUICKSTART_OUT:-target/quickstart}"
MODEL=models/ggml-tiny.en.bin
T0=$SECONDS
step() { printf '== %s (%ds)\n' "$*" "$((SECONDS - T0))"; }
die() { echo "quickstart: $1" >&2; exit "${2:-1}"; }

# Each package with the probe that tells it is there: a command, a pkg-config module or the
# dpkg status, so tools installed another way count too.
have_pkg() {
    case "$1" in
        cmake | clang | pkg-config | espeak-ng | sox) command -v "$1" >/dev/null 2>&1 ;;
        libasound2-dev) pkg-config --exists alsa 2>/dev/null || dpkg -s "$1" >/dev/null 2>&1 ;;
        python3-pip) python3 -m pip --version >/dev/null 2>&1 ;;
        *) dpkg -s "$1" >/dev/null 2>&1 ;;
    esac
}

step "system packages"
# Build: whisper.cpp (cmake, clang via bindgen's libclang), ALSA for cpal (libasound2-dev,
# pkg-config). Tools: espeak-ng and sox make the demo calls. The model converter needs pip.
wanted=(cmake libclang-dev clang libasound2-dev pkg-config espeak-ng sox)
[ -f "$MODEL" ] || wanted+=(python3-pip)
# shellcheck disable=SC2206 # word splitting is the point
wanted+=(${QUICKSTART_EXTRA_PACKAGES:-})
missing=()
for p in "${wanted[@]}"; do have_pkg "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" 2
    fi
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup, 1.85 or newer) first" 2

step "release build (cargo build --release; the first one builds whisper.cpp)"
cargo build --release --locked

step "Whisper model ($MODEL)"
CALLTONE_BIN=target/release/calltone bash models/fetch-offline.sh tiny.en

step "replay demo/demo-call.wav"
mkdir -p "$OUT"
target/release/calltone replay demo/demo-call.wav --out "$OUT" >/dev/null
events="$OUT/demo-call.events.jsonl"
count() { grep -c "\"type\":\"$1\"" "$events" || true; }
echo "$(wc -l <"$events") events: $(count utterance) utterances, $(count alert) alerts ($events)"
grep -m 3 '"type":"utterance"' "$events" | sed -E 's/.*"speaker":"([a-z]+)".*"text":"([^"]*)".*/  \1: \2/'
step "done"
echo "report: $OUT/demo-call.report.html (index: $OUT/index.html)"
echo "next: cargo test --release"
