#!/usr/bin/env python3
"""Calm clips of the labelled corpora as calls, for the false-nudge rate of agent assist.

For every speaker of EmoDB (neutral), RAVDESS (neutral, calm), TurEV-DB (calm) and BAVED
(level 1, the neutral level) in ../shared/data, up to 12 of the speaker's calm clips are
shuffled and joined with 1.5 s of silence into one mono 16 kHz call (sox), the speaker as the
customer and no agent: any nudge there comes from a false distress reading (stress, negative
words, an escalation phrase) or from silence. Standard library and sox only.

  python3 tools/assist-eval/corpus_calm_calls.py OUT_DIR [--data ../shared/data] [--seed 1]
Then: tools/assist-eval/assist_eval.py --calm 'OUT_DIR/*.wav'
"""
import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CALM = {
    "emodb-train": lambda r: r["emotion"] == "neutral",
    "ravdess-train": lambda r: r["emotion"] in ("neutral", "calm"),
    "turev-train": lambda r: r["emotion"] == "calm",
    "baved-train": lambda r: r["level"] == "1",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rnd = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        gap = os.path.join(tmp, "gap.wav")
        subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", gap, "trim", "0", "1.5"], check=True)
        for corpus, calm in CALM.items():
            d = os.path.join(a.data, corpus)
            if not os.path.isdir(d):
                print(f"SKIP: {d} not found", file=sys.stderr)
                continue
            by = {}
            with open(os.path.join(d, "labels.tsv")) as f:
                for r in csv.DictReader(f, delimiter="\t"):
                    if calm(r):
                        by.setdefault(r["speaker"], []).append(os.path.join(d, r["file"]))
            for spk, files in sorted(by.items()):
                rnd.shuffle(files)
                parts = []
                for i, f in enumerate(files[:12]):
                    w = os.path.join(tmp, f"{i}.wav")
                    subprocess.run(["sox", "-q", f, "-r", "16000", "-c", "1", "-b", "16", w], check=True)
                    parts += [w, gap]
                out = os.path.join(a.out, f"{corpus.split('-')[0]}-{spk}.wav")
                subprocess.run(["sox", "-q", gap] + parts + [out], check=True)
                print(out)


if __name__ == "__main__":
    main()
