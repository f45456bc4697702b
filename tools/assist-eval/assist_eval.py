#!/usr/bin/env python3
"""Replays calls through `calltone replay` and prints each call's nudge timeline (raised and
withdrawn, with what was said around it) and nudges per 10 minutes over the calls marked calm.
Standard library only.

Usage: tools/assist-eval/assist_eval.py [--calm GLOB...] CALL.wav...
  --calm: calls (files or globs) expected to need no nudge; their nudges are counted as false.
"""
import argparse
import glob
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "calltone"


def replay(path):
    p = subprocess.run([str(BIN), "replay", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{path}: replay failed: {p.stderr.strip().splitlines()[-1:]}")
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def timeline(path, events, verbose):
    nudges, duration = [], 0.0
    for e in events:
        if e["type"] == "assist":
            nudges.append(e)
        if e["type"] == "call_ended":
            duration = e["duration"]
        if verbose and e["type"] == "utterance" and e["text"]:
            print(f"    {e['start']:6.1f}-{e['end']:5.1f} {e['speaker']:8} {e['text'][:80]}")
        if e["type"] == "assist":
            state = "RAISED   " if e["active"] else "withdrawn"
            ev = {k: v for k, v in e["evidence"].items() if k not in ("distress_start", "distress_end")}
            print(f"  {e['t']:6.1f} {state} {e['kind']:14} {e['message'] if e['active'] else ''} {json.dumps(ev)}")
    raised = [n for n in nudges if n["active"]]
    return raised, duration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calm", nargs="*", default=[])
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("calls", nargs="*")
    a = ap.parse_args()
    calm = [f for g in a.calm for f in sorted(glob.glob(g))]
    calm_raised, calm_s = 0, 0.0
    for path in a.calls + calm:
        print(f"== {path}{' (calm)' if path in calm else ''}")
        raised, duration = timeline(path, replay(path), a.verbose)
        print(f"  {len(raised)} nudges in {duration:.1f} s")
        if path in calm:
            calm_raised += len(raised)
            calm_s += duration
    if calm:
        rate = calm_raised / (calm_s / 600.0) if calm_s else float("nan")
        print(f"calm calls: {len(calm)}, {calm_s / 60:.1f} min, {calm_raised} nudges = {rate:.2f} per 10 min")


if __name__ == "__main__":
    main()
