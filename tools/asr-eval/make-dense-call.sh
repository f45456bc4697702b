#!/usr/bin/env bash
# A word-dense call: one speaker's short clips of an acted corpus, one after another with a
# fixed gap (issue 14's "dense short speech" shape), as 16 kHz mono WAV.
#   tools/asr-eval/make-dense-call.sh OUT.wav [DIR] [SPEAKER_PREFIX] [COUNT] [GAP_S]
# Default: the first 40 clips of TurEV speaker 1157 from ../shared/data, 1.5 s gaps.
set -euo pipefail
out=${1:?usage: make-dense-call.sh OUT.wav [DIR] [SPEAKER_PREFIX] [COUNT] [GAP_S]}
dir=${2:-../shared/data/turev-train}
prefix=${3:-1157_}
count=${4:-40}
gap=${5:-1.5}
command -v sox >/dev/null || { echo "make-dense-call: sox not found" >&2; exit 2; }
[ -d "$dir" ] || { echo "make-dense-call: $dir: no such folder (../shared/data is not on this box?)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
# Sorted, so the same arguments always make the same call.
while IFS= read -r f; do
  sox "$f" -r 16000 -c 1 -b 16 "$tmp/$(printf %04d $i).wav" pad 0 "$gap"
  i=$((i + 1))
done < <(find "$dir" -maxdepth 1 -name "${prefix}*.flac" | sort | head -n "$count")
[ "$i" -gt 0 ] || { echo "make-dense-call: no ${prefix}*.flac in $dir" >&2; exit 2; }
sox "$tmp"/*.wav "$out"
echo "$out: $i clips, $(soxi -D "$out") s" >&2
