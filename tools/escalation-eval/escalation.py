#!/usr/bin/env python3
"""Escalation calls from labelled emotional speech: does the stress alert fire when a
speaker turns angry, and stay quiet while they are calm?

For every speaker of EmoDB, RAVDESS, TurEV-DB and BAVED (../shared/data), one mono "call"
is assembled:
  calm part   the speaker's calm clips (EmoDB neutral; RAVDESS neutral and calm; TurEV calm;
              BAVED level 1, neutral), shuffled, 1.5 s of silence between clips;
  angry part  the speaker's anger clips (BAVED: level 2, high intensity), shuffled, same
              spacing.
Each call goes through `calltone replay` (wideband, and as a telephone call: 300-3400 Hz,
8 kHz, mu-law via sox) with the speaker as the customer. From the events:
  calm part:  share of `state` ticks whose customer stress is at or above the alert
              threshold (0.7), the peak, and customer_stress alerts (false alarms);
  angry part: whether the alert fired, and how long after the first angry clip began.
Speakers are the training speakers of the shipped arousal model, so the arousal side is
optimistic; what this measures is the live stress dynamics (window, smoothing, baseline,
alert rule) on real speech instead of synthetic demo calls.

  python3 tools/escalation-eval/escalation.py [--data ../shared/data] [--keep DIR]
      [--bin target/release/calltone] [--config FILE] [--seed 1] [--json FILE]
      [--level-swing DB]   (the caller's level jumps every 2.5 s within +-DB: a crude AGC)
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from levels import level_swing  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SR = 16000
GAP_S = 1.5
THRESHOLD = 0.7


def default_data():
    for d in (os.path.join(REPO, "..", "shared", "data"), "/work/shared/data"):
        if os.path.isdir(d):
            return os.path.abspath(d)
    return None


# corpus: (column, calm values, angry values). BAVED has no emotion column: level 1 is
# neutral speech, level 2 high intensity (its "angry" stand-in); level 0 (tired) is left out
# of the calm part as it is not a caller's calm.
PARTS = {
    "emodb": ("emotion", {"neutral"}, {"anger"}),
    "ravdess": ("emotion", {"neutral", "calm"}, {"angry"}),
    "turev": ("emotion", {"calm"}, {"angry"}),
    "baved": ("level", {"1"}, {"2"}),
}


def clips(data):
    """{(corpus, speaker): {"calm": [paths], "angry": [paths]}}"""
    out = {}
    for corpus, (column, calm, angry) in PARTS.items():
        d = os.path.join(data, corpus + "-train")
        if not os.path.isdir(d):
            continue
        with open(os.path.join(d, "labels.tsv")) as f:
            for row in csv.DictReader(f, delimiter="\t"):
                v = row[column]
                part = "calm" if v in calm else "angry" if v in angry else None
                if part:
                    out.setdefault((corpus, row["speaker"]), {"calm": [], "angry": []})[part].append(
                        os.path.join(d, row["file"]))
    return out


def load16k(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = np.gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g).astype("float32")
    return x


def assemble(parts, rng):
    """Concatenate; returns the signal and the start time of the angry part."""
    gap = np.zeros(int(GAP_S * SR), "float32")
    pieces, t, angry_t0 = [gap], GAP_S, None
    for name in ("calm", "angry"):
        files = list(parts[name])
        rng.shuffle(files)
        if name == "angry":
            angry_t0 = t
        for p in files:
            x = load16k(p)
            pieces += [x, gap]
            t += len(x) / SR + GAP_S
    return np.concatenate(pieces), angry_t0


def telephone(src, dst):
    mid = dst + ".ulaw.wav"
    subprocess.run(["sox", "-V1", src, "-r", "8000", "-e", "u-law", "-b", "8", mid, "sinc", "300-3400"], check=True)
    os.replace(mid, dst)


def replay(binary, wav, config):
    cmd = [binary, "replay", "--channels", "customer", wav]
    if config:
        cmd[2:2] = ["--config", config]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        sys.exit(f"{wav}: replay failed: {res.stderr.strip().splitlines()[-1:]}")
    return [json.loads(l) for l in res.stdout.splitlines() if l.strip()]


def score(events, angry_t0):
    ticks = [(e["t"], e["speakers"].get("customer", {}).get("stress")) for e in events if e["type"] == "state"]
    calm = [s for t, s in ticks if t < angry_t0 and s is not None]
    angry = [s for t, s in ticks if t >= angry_t0 and s is not None]
    alerts = [e for e in events if e["type"] == "alert" and e["kind"] == "customer_stress"]
    false = [a for a in alerts if a["t"] < angry_t0]
    hits = [a for a in alerts if a["t"] >= angry_t0]
    return {
        "calm_high_share": float(np.mean([s >= THRESHOLD for s in calm])) if calm else None,
        "calm_peak": max(calm) if calm else None,
        "calm_mean": float(np.mean(calm)) if calm else None,
        "angry_mean": float(np.mean(angry)) if angry else None,
        "false_alarms": len(false),
        "detected": bool(hits),
        "latency_s": (hits[0]["t"] - angry_t0) if hits else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "calltone"))
    ap.add_argument("--config")
    ap.add_argument("--keep", help="keep the assembled calls here")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--level-swing", type=float, default=0.0, metavar="DB",
                    help="the caller's level jumps every 2.5 s to a random gain within +-DB (a crude AGC); 0: off")
    ap.add_argument("--json", help="write per-call results here")
    args = ap.parse_args()
    if not args.data:
        sys.exit("no data: pass --data (../shared/data)")
    work = args.keep or tempfile.mkdtemp(prefix="escalation-")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(args.seed)
    rows = []
    for (corpus, spk), parts in sorted(clips(args.data).items()):
        if not parts["calm"] or not parts["angry"]:
            continue
        x, angry_t0 = assemble(parts, rng)
        if args.level_swing > 0:
            x = level_swing(x, SR, args.level_swing, zlib.crc32(f"{corpus}-{spk}".encode()))
        wb = os.path.join(work, f"{corpus}-{spk}.wav")
        sf.write(wb, x, SR, subtype="PCM_16")
        tel = os.path.join(work, f"{corpus}-{spk}.tel.wav")
        telephone(wb, tel)
        for channel, path in (("wideband", wb), ("telephone", tel)):
            r = score(replay(args.bin, path, args.config), angry_t0)
            r.update(corpus=corpus, speaker=spk, channel=channel, duration_s=len(x) / SR, angry_t0=angry_t0)
            rows.append(r)
            f = lambda v: "-" if v is None else f"{v:.2f}"
            print(f"{corpus:7} {spk} {channel:9} calm high {f(r['calm_high_share'])} peak {f(r['calm_peak'])} "
                  f"mean {f(r['calm_mean'])} | angry mean {f(r['angry_mean'])} | false alarms {r['false_alarms']} "
                  f"| detected {r['detected']} after {f(r['latency_s'])}", file=sys.stderr)
    print("\ncorpus   channel    calls  calm ticks >= 0.7  calm peak (median)  false alarms  detected  latency median")
    for corpus in PARTS:
        for channel in ("wideband", "telephone"):
            g = [r for r in rows if r["corpus"] == corpus and r["channel"] == channel]
            if not g:
                continue
            lat = [r["latency_s"] for r in g if r["latency_s"] is not None]
            share = [r["calm_high_share"] for r in g if r["calm_high_share"] is not None]
            peak = [r["calm_peak"] for r in g if r["calm_peak"] is not None]
            print(f"{corpus:8} {channel:9} {len(g):6}  {np.mean(share) * 100:15.1f} %"
                  f"  {np.median(peak):18.2f}  {sum(r['false_alarms'] for r in g):5} in {sum(r['false_alarms'] > 0 for r in g)} calls"
                  f"  {sum(r['detected'] for r in g):4}/{len(g)}  {np.median(lat) if lat else float('nan'):10.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
