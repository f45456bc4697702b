#!/usr/bin/env python3
"""How well `calltone replay` times the words it transcribes, on calls whose word times are
known exactly: every word is synthesised alone by espeak-ng (its silence trimmed), and the
words of ten sentences are joined with 0.03-0.3 s gaps (1.5 s between sentences), so each
word's true start and end are where it was placed.

    tools/asr-eval/word-times.py [--voices en-us,en+f3,en-gb] [--binary target/release/calltone]
                                 [--config FILE.toml] [--keep DIR]

Prints per voice: words matched to the reference (difflib on normalised words), words of
no duration, the start error (median, p90), the share of starts within 100 ms, and the
share of words whose midpoint lies inside the true word (±50 ms). Needs espeak-ng, sox and
python3-soundfile/numpy.
"""
import argparse
import difflib
import json
import os
import random
import re
import subprocess
import tempfile

import numpy as np
import soundfile as sf

SENTENCES = [
    "please check my account balance for last month",
    "i have been waiting on hold for almost forty minutes",
    "the technician never showed up on tuesday morning",
    "can you transfer me to someone who can actually help",
    "my internet keeps dropping every evening around eight",
    "i want to cancel the contract before the renewal date",
    "thank you for calling how can i help you today",
    "let me look into that for you right away",
    "the bill shows a charge i do not recognise",
    "we will send a replacement router by friday",
]
RATE = 16000


def norm(w):
    return re.sub(r"[^a-z0-9']", "", w.lower())


def make_call(path, voice, seed, tmp):
    rng = random.Random(seed)
    out, refs, t = [np.zeros(RATE // 2)], [], 0.5
    cache = {}
    for sentence in SENTENCES:
        for w in sentence.split():
            if w not in cache:
                raw, trimmed = os.path.join(tmp, "w.wav"), os.path.join(tmp, "w16.wav")
                subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", raw, w], check=True)
                subprocess.run(["sox", raw, "-r", str(RATE), "-c", "1", trimmed,
                                "silence", "1", "0.01", "0.5%", "reverse",
                                "silence", "1", "0.01", "0.5%", "reverse"], check=True)
                cache[w] = sf.read(trimmed)[0]
            a = cache[w]
            refs.append((w, t, t + len(a) / RATE))
            out.append(a)
            t += len(a) / RATE
            gap = int(RATE * rng.uniform(0.03, 0.3))
            out.append(np.zeros(gap))
            t += gap / RATE
        out.append(np.zeros(int(RATE * 1.5)))
        t += 1.5
    sf.write(path, np.concatenate(out) * 0.8, RATE, subtype="PCM_16")
    return refs


def score(refs, events):
    hyp = []
    for line in events.splitlines():
        e = json.loads(line)
        if e.get("type") == "utterance":
            hyp += [(norm(w["w"]), w["start"], w["end"]) for w in e.get("words") or []]
    sm = difflib.SequenceMatcher(a=[r[0] for r in refs], b=[h[0] for h in hyp], autojunk=False)
    errs, inside = [], 0
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            r, h = refs[a + k], hyp[b + k]
            errs.append(abs(h[1] - r[1]))
            inside += r[1] - 0.05 <= (h[1] + h[2]) / 2 <= r[2] + 0.05
    errs.sort()
    m = max(len(errs), 1)
    return {
        "words": len(refs),
        "matched": len(errs),
        "no_duration": sum(1 for h in hyp if h[2] <= h[1]),
        "start_err_median_s": round(errs[len(errs) // 2], 3) if errs else None,
        "start_err_p90_s": round(errs[int(len(errs) * 0.9)], 3) if errs else None,
        "start_within_100ms": round(sum(e <= 0.1 for e in errs) / m, 3),
        "midpoint_inside": round(inside / m, 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voices", default="en-us,en+f3,en-gb")
    ap.add_argument("--binary", default="target/release/calltone")
    ap.add_argument("--config")
    ap.add_argument("--keep", help="write the calls and their references here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or tmp
        os.makedirs(where, exist_ok=True)
        print("| voice | words | matched | no duration | start error median / p90 | start within 100 ms | midpoint inside the word |")
        print("|---|---|---|---|---|---|---|")
        for seed, voice in enumerate(args.voices.split(","), 1):
            wav = os.path.join(where, f"word-times-{seed}.wav")
            refs = make_call(wav, voice, seed, tmp)
            with open(wav + ".json", "w") as f:
                json.dump(refs, f)
            cmd = [args.binary, "replay", wav] + (["--config", args.config] if args.config else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            s = score(refs, out)
            print(f"| {voice} | {s['words']} | {s['matched']} | {s['no_duration']} | "
                  f"{s['start_err_median_s']} / {s['start_err_p90_s']} s | "
                  f"{s['start_within_100ms']:.0%} | {s['midpoint_inside']:.0%} |")


if __name__ == "__main__":
    main()
