#!/usr/bin/env python3
"""Calm calls in voices calltone never heard: does anything raise a stress alert?

Scripts short routine two-speaker calls (20-60 s: an address change, a balance question, a
delivery date, ...) with espeak-ng in many voices, rates and pitches for the customer, lays
them out as stereo 16 kHz WAVs (channel 0 customer, channel 1 agent, a faint line-noise
floor, as tools/make-demo-call.sh does), and replays each through `calltone replay`, wideband
and as a telephone call (300-3400 Hz, 8 kHz, mu-law via sox). Also replays demo/calm-call.wav.
From the events of every call:
  customer_stress alerts (each call with one is a false-alarm call), any other alert,
  the share of customer `state` ticks with stress >= 0.7 (the alert level), the peak,
  and the same for the call's first 30 s.
Nothing here was used to train or tune the arousal model or the alert rule.

  python3 tools/calm-calls/calm_calls.py [--bin target/release/calltone] [--config FILE]
      [--keep DIR] [--json FILE] [--calls N] [--level-swing DB]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zlib

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
THRESHOLD = 0.7
FIRST_S = 30.0

# Customer voices: (espeak-ng voice, words per minute, pitch 0-99, amplitude). Calm settings:
# ordinary rates and pitches, not the demo's escalation.
VOICES = [
    ("en-us+f1", 150, 50, 70), ("en-us+f2", 145, 45, 70), ("en-us+f3", 155, 55, 60),
    ("en-us+f4", 140, 50, 70), ("en-us+f5", 160, 40, 80), ("en-gb+f2", 150, 50, 70),
    ("en-gb+f3", 135, 60, 60), ("en-us+steph", 150, 50, 70), ("en-us+linda", 145, 45, 70),
    ("en-us+m1", 150, 40, 70), ("en-us+m2", 140, 35, 80), ("en-gb+m4", 160, 45, 70),
    ("en-us+m6", 135, 30, 70), ("en-us+klatt", 150, 50, 70), ("en-us+klatt4", 145, 60, 70),
    ("en-sc+f2", 150, 50, 70), ("en-us+grandma", 130, 50, 70), ("en-us+paul", 155, 45, 70),
]
AGENTS = [("en-us+m3", 140, 40, 90), ("en-gb+f4", 145, 50, 80), ("en-us+m7", 150, 45, 85)]

# Routine calls: (agent|customer, text) turns.
SCRIPTS = {
    "address": [
        ("agent", "Thank you for calling Northwind Energy, this is Alex. How can I help?"),
        ("customer", "Hello. I moved last week and I would like to update my address."),
        ("agent", "Of course. Can I have your account number, please?"),
        ("customer", "Yes, it is four four two one, seven seven zero three."),
        ("agent", "Thank you. And what is the new address?"),
        ("customer", "It is twelve Mill Lane, Riverside, and the postcode is R S four, two A B."),
        ("agent", "Got it. I have updated that for you. Anything else?"),
        ("customer", "No, that is everything. Thank you very much."),
        ("agent", "You are welcome. Have a good day."),
    ],
    "balance": [
        ("agent", "Good morning, Harbor Bank, my name is Jo. What can I do for you?"),
        ("customer", "Hi, I just wanted to check the balance on my savings account."),
        ("agent", "Sure. I can see a balance of two thousand and forty dollars."),
        ("customer", "Okay, great. And has the transfer from Monday arrived?"),
        ("agent", "Yes, it arrived on Tuesday morning."),
        ("customer", "Lovely, that is all I needed. Thanks."),
    ],
    "delivery": [
        ("agent", "Hello, you are through to Parcel Express customer service."),
        ("customer", "Hi there. I am expecting a parcel and I wondered when it will come."),
        ("agent", "No problem. Do you have the tracking number?"),
        ("customer", "I do. It is P X nine eight one four two."),
        ("agent", "Thanks. It is out for delivery and should reach you this afternoon."),
        ("customer", "Perfect. Will I need to sign for it?"),
        ("agent", "No signature is needed. It can be left with a neighbour."),
        ("customer", "That is fine. Thank you for checking."),
    ],
    "appointment": [
        ("agent", "Riverside Dental, Sam speaking. How can I help you today?"),
        ("customer", "Hello, I would like to move my appointment on Thursday, if possible."),
        ("agent", "Let me have a look. Would next Monday at ten work for you?"),
        ("customer", "Monday at ten is good, yes."),
        ("agent", "Done. You will get a text message to confirm it."),
        ("customer", "Thank you, that is very helpful. Bye for now."),
    ],
    "plan": [
        ("agent", "Thanks for calling Acme Mobile. What can I help you with?"),
        ("customer", "Hi. I am thinking about a plan with a little more data."),
        ("agent", "Sure. We have a plan with twenty gigabytes for five more a month."),
        ("customer", "That sounds reasonable. Does my contract stay the same length?"),
        ("agent", "Yes, nothing else changes, and it starts with your next bill."),
        ("customer", "Okay. Please go ahead and switch me to that one."),
        ("agent", "All done. Is there anything else today?"),
        ("customer", "No, that is all. Thanks for your help."),
    ],
    "password": [
        ("agent", "Help desk, this is Chris speaking."),
        ("customer", "Hello, I cannot remember the password for my online account."),
        ("agent", "I can send you a reset link. Is your email still the same?"),
        ("customer", "Yes, it is the same one as before."),
        ("agent", "I have sent the link now. It is valid for one hour."),
        ("customer", "I have got it, thank you. It is working now."),
        ("agent", "Great. Have a lovely afternoon."),
    ],
}


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def duration(path):
    return float(subprocess.run(["soxi", "-D", path], check=True, capture_output=True, text=True).stdout)


def build_call(path, turns, customer, agent, tmp, gap_s=0.7):
    cust, ag = [], []
    lead = os.path.join(tmp, "lead.wav")
    gap = os.path.join(tmp, "gap.wav")
    run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", lead, "trim", "0", "1.0"])
    run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", gap, "trim", "0", str(gap_s)])
    cust.append(lead)
    ag.append(lead)
    for i, (who, text) in enumerate(turns):
        voice, rate, pitch, amp = customer if who == "customer" else agent
        raw = os.path.join(tmp, f"raw{i}.wav")
        t = os.path.join(tmp, f"t{i}.wav")
        sil = os.path.join(tmp, f"sil{i}.wav")
        run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-a", str(amp), "-w", raw, text])
        run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", t])
        run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", sil, "trim", "0", str(duration(t))])
        (cust if who == "customer" else ag).append(t)
        (ag if who == "customer" else cust).append(sil)
        cust.append(gap)
        ag.append(gap)
    for name, parts in (("c", cust), ("a", ag)):
        run(["sox", *parts, os.path.join(tmp, f"{name}.wav")])
        noisy = os.path.join(tmp, f"{name}n.wav")
        noise = subprocess.run(["sox", os.path.join(tmp, f"{name}.wav"), "-p", "synth", "whitenoise", "vol", "0.0008"],
                               check=True, capture_output=True).stdout
        subprocess.run(["sox", "-m", os.path.join(tmp, f"{name}.wav"), "-", noisy], input=noise, check=True)
    run(["sox", "-M", os.path.join(tmp, "cn.wav"), os.path.join(tmp, "an.wav"), "-b", "16", path])


def telephone(src, dst):
    run(["sox", src, "-r", "8000", "-e", "u-law", "-b", "8", dst, "sinc", "300-3400"])


def replay(binary, wav, config):
    cmd = [binary, "replay", wav]
    if config:
        cmd += ["--config", config]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        sys.exit(f"{wav}: replay failed: {res.stderr.strip().splitlines()[-1:]}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def score(events):
    ticks = [(e["t"], e["speakers"].get("customer", {}).get("stress")) for e in events if e["type"] == "state"]
    ticks = [(t, s) for t, s in ticks if s is not None]
    first = [s for t, s in ticks if t < FIRST_S]
    alerts = [e for e in events if e["type"] == "alert"]
    stress = [a for a in alerts if a["kind"] == "customer_stress"]
    arousal = [e["arousal"] for e in events if e["type"] == "utterance" and e["speaker"] == "customer"
               and e.get("arousal") is not None]
    share = lambda v: sum(s >= THRESHOLD for s in v) / len(v) if v else None
    return {
        "ticks": len(ticks),
        "high_share": share([s for _, s in ticks]),
        "peak": max((s for _, s in ticks), default=None),
        "first30_high_share": share(first),
        "first30_stress_alerts": sum(a["t"] < FIRST_S for a in stress),
        "stress_alerts": len(stress),
        "other_alerts": sorted(a["kind"] for a in alerts if a["kind"] != "customer_stress"),
        "utterance_arousal_mean": statistics.mean(arousal) if arousal else None,
        "utterance_arousal_max": max(arousal, default=None),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "calltone"))
    ap.add_argument("--config")
    ap.add_argument("--keep", help="keep the calls here (reused when present)")
    ap.add_argument("--json", help="write per-call results here")
    ap.add_argument("--calls", type=int, default=len(VOICES) * 2, help="number of scripted calls (default 36)")
    ap.add_argument("--only", help="comma-separated call numbers to make (default all)")
    ap.add_argument("--level-swing", type=float, default=0.0, metavar="DB",
                    help="the customer's level jumps every 2.5 s to a random gain within +-DB (a crude AGC); 0: off")
    ap.add_argument("--make-only", action="store_true", help="write the calls (to --keep) and print their paths; no replay")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="calm-calls-")
    os.makedirs(work, exist_ok=True)
    names = sorted(SCRIPTS)
    calls = [("demo-calm", os.path.join(REPO, "demo", "calm-call.wav"), "demo")]
    only = {int(x) for x in args.only.split(",")} if args.only else None
    for i in range(args.calls):
        if only is not None and i not in only:
            continue
        customer = VOICES[i % len(VOICES)]
        script = names[(i + i // len(VOICES)) % len(names)]
        agent = AGENTS[i % len(AGENTS)]
        path = os.path.join(work, f"{i:02}-{script}-{customer[0].replace('+', '_')}-{customer[1]}-{customer[2]}.wav")
        if not os.path.exists(path):
            with tempfile.TemporaryDirectory() as tmp:
                build_call(path, SCRIPTS[script], customer, agent, tmp)
        calls.append((os.path.basename(path)[:-4], path, f"{customer[0]} {customer[1]} wpm p{customer[2]}"))
    if args.make_only:
        for _, path, _ in calls[1:]:
            print(path)
        return
    if args.level_swing > 0:
        # numpy and soundfile only for this option.
        import soundfile as sf
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
        from levels import level_swing
    rows = []
    for name, wb, voice in calls:
        if args.level_swing > 0:
            x, sr = sf.read(wb, dtype="float32")
            swung = os.path.join(work, f"{name}.swing{args.level_swing:g}.wav")
            sf.write(swung, level_swing(x, sr, args.level_swing, zlib.crc32(name.encode())), sr, subtype="PCM_16")
            name, wb = os.path.basename(swung)[:-4], swung
        tel = os.path.join(work, name + ".tel.wav")
        if not os.path.exists(tel):
            telephone(wb, tel)
        for channel, path in (("wideband", wb), ("telephone", tel)):
            r = score(replay(args.bin, path, args.config))
            r.update(call=name, voice=voice, channel=channel, duration_s=duration(wb))
            rows.append(r)
            f = lambda v: "-" if v is None else f"{v:.2f}"
            print(f"{name:40} {channel:9} {r['duration_s']:5.1f} s  ticks>=0.7 {f(r['high_share'])} peak {f(r['peak'])} "
                  f"arousal mean {f(r['utterance_arousal_mean'])} max {f(r['utterance_arousal_max'])} "
                  f"stress alerts {r['stress_alerts']} (first 30 s {r['first30_stress_alerts']}) other {r['other_alerts']}",
                  file=sys.stderr)
    print("\nchannel    calls  false-alarm calls (per 100)  in first 30 s  calm ticks >= 0.7  first 30 s ticks >= 0.7  median peak  other alerts")
    for channel in ("wideband", "telephone"):
        g = [r for r in rows if r["channel"] == channel]
        fa = sum(r["stress_alerts"] > 0 for r in g)
        fa30 = sum(r["first30_stress_alerts"] > 0 for r in g)
        ticks = sum(r["ticks"] for r in g)
        high = sum((r["high_share"] or 0) * r["ticks"] for r in g)
        first = [r["first30_high_share"] for r in g if r["first30_high_share"] is not None]
        peaks = [r["peak"] for r in g if r["peak"] is not None]
        other = sum(len(r["other_alerts"]) for r in g)
        print(f"{channel:9} {len(g):6}  {fa:6} ({100 * fa / len(g):5.1f})             {fa30:6}      "
              f"{100 * high / max(ticks, 1):10.1f} %    {100 * statistics.mean(first) if first else float('nan'):14.1f} %"
              f"   {statistics.median(peaks) if peaks else float('nan'):10.2f}  {other:6}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
