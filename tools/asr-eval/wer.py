#!/usr/bin/env python3
"""WER of `calltone replay` against whisper.cpp on the whole file (same weights), on the
read-speech set in ../shared/data/asr and on a phone-band copy of it (8 kHz mu-law, sox).

    tools/asr-eval/wer.py [--data ../shared/data/asr] [--model models/ggml-tiny.en.bin]
                          [--config NAME=FILE.toml ...] [--no-whole]

Prints one markdown table: per condition (clean, phone) the corpus WER and x real time of
each method. `--config` adds a replay column run with that config (e.g. a prompt). Needs
target/release/calltone and target/release/examples/asr_bench (cargo build --release
--bin calltone --example asr_bench).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n):
    """Numbers as LJSpeech's references spell them (up to the thousands; years as pairs)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if 1100 <= n < 2000 and n % 100 != 0:
        return spell(n // 100) + " " + spell(n % 100)
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " and " + spell(n % 100))
    return spell(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + spell(n % 1000))


ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
           "nine": "ninth", "twelve": "twelfth"}


def spell_ordinal(n):
    """"15th" as LJSpeech's references spell it: "fifteenth"."""
    *head, last = spell(n).split()
    if last in ORDINAL:
        last = ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join(head + [last])


def normalise(text):
    text = text.lower().replace("-", " ")
    text = re.sub(r"(\d+)(?:st|nd|rd|th)\b", lambda m: " " + spell_ordinal(int(m.group(1))) + " ", text)
    text = re.sub(r"\d+", lambda m: " " + spell(int(m.group())) + " ", text)
    text = re.sub(r"[^a-z' ]", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def edits(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs, hyps):
    e = sum(edits(normalise(refs[f]), normalise(hyps.get(f, ""))) for f in refs)
    n = sum(len(normalise(refs[f])) for f in refs)
    return e / n


def replay(calltone, files, model, config):
    cmd = [calltone, "replay", "--model", model]
    if config:
        cmd += ["--config", config]
    t0 = time.time()
    out = subprocess.run(cmd + files, capture_output=True, text=True, check=True).stdout
    wall = time.time() - t0
    texts = {}
    by_id = {os.path.splitext(os.path.basename(f))[0]: f for f in files}
    for line in out.splitlines():
        ev = json.loads(line)
        if ev.get("type") != "utterance":
            continue
        f = by_id.get(ev.get("call_id"), ev.get("call_id"))
        texts[f] = (texts.get(f, "") + " " + ev.get("text", "")).strip()
    return texts, wall


def whole(bench, files, model):
    t0 = time.time()
    out = subprocess.run([bench, "whole", model] + files, capture_output=True, text=True, check=True).stdout
    wall = time.time() - t0
    texts = {}
    for line in out.splitlines():
        f, _, t = line.partition("\t")
        texts[f] = t
    return texts, wall


def references(data):
    """{file name: reference text} from DATA/transcripts.tsv (header row skipped)."""
    refs = {}
    for line in open(os.path.join(data, "transcripts.tsv")):
        name, _, text = line.rstrip("\n").partition("\t")
        if name and text and name != "file":
            refs[name] = text
    return refs


def conditions(data, refs, tmp, phone_label="phone 8k u-law"):
    """{condition: {audio path: reference}}: the files as they are ("clean") and a phone-band
    copy of each in tmp (8 kHz mu-law, sox)."""
    out = {"clean": {}, phone_label: {}}
    for name, text in refs.items():
        src = os.path.join(data, name)
        out["clean"][src] = text
        dst = os.path.join(tmp, name)
        subprocess.run(["sox", "-D", src, "-r", "8000", "-e", "u-law", dst], check=True)
        out[phone_label][dst] = text
    return out


def duration(files):
    return sum(float(subprocess.run(["soxi", "-D", f], capture_output=True, text=True, check=True).stdout) for f in files)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/asr")
    ap.add_argument("--model", default="models/ggml-tiny.en.bin")
    ap.add_argument("--config", action="append", default=[], help="NAME=FILE.toml: another replay column")
    ap.add_argument("--no-whole", action="store_true")
    ap.add_argument("--show", action="store_true", help="print each hypothesis")
    a = ap.parse_args()
    tsv = os.path.join(a.data, "transcripts.tsv")
    if not os.path.isfile(tsv):
        print(f"asr-eval: {tsv} not found; skipping (the evaluation data is not on this box)", file=sys.stderr)
        return 0
    refs0 = references(a.data)
    calltone, bench = "target/release/calltone", "target/release/examples/asr_bench"
    for exe in (calltone, bench):
        if not os.path.isfile(exe):
            print(f"asr-eval: {exe} missing; cargo build --release --bin calltone --example asr_bench", file=sys.stderr)
            return 2
    tmp = tempfile.mkdtemp(prefix="asr-eval-")
    conds = conditions(a.data, refs0, tmp)
    columns = [("replay", None)] + [tuple(c.split("=", 1)) for c in a.config]
    header = ["condition"] + [f"{n} WER" for n, _ in columns] + [f"{n} xRT" for n, _ in columns]
    if not a.no_whole:
        header[1 + len(columns):1 + len(columns)] = ["whole-file whisper.cpp WER"]
        header += ["whole-file xRT"]
    rows = []
    for cond, refs in conds.items():
        files = sorted(refs)
        dur = duration(files)
        wers, speeds = [], []
        for n, cfg in columns:
            hyps, wall = replay(calltone, files, a.model, cfg)
            wers.append(f"{wer(refs, hyps):.3f}")
            speeds.append(f"{dur / wall:.1f}")
            if a.show:
                for f in files:
                    print(f"[{cond} {n}] {os.path.basename(f)}: {hyps.get(f, '')}", file=sys.stderr)
        if not a.no_whole:
            hyps, wall = whole(bench, files, a.model)
            wers.append(f"{wer(refs, hyps):.3f}")
            speeds.append(f"{dur / wall:.1f}")
            if a.show:
                for f in files:
                    print(f"[{cond} whole] {os.path.basename(f)}: {hyps.get(f, '')}", file=sys.stderr)
        rows.append([cond] + wers + speeds)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
