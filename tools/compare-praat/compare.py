#!/usr/bin/env python3
"""Compare calltone's prosody engine with Praat (accuracy) and openSMILE (speed).

For every WAV in --data (default: ../shared/data/emodb-train next to the repository):
  * wideband: the file as is (16 kHz);
  * telephone: 300-3400 Hz band-pass, 8 kHz, G.711 mu-law, back to 16 kHz (sox), as the
    calltone pipeline sees a phone call.
Ours: examples/prosody_csv (built here in release), run once over all files of a set.
Praat (parselmouth): To Pitch (ac) with the same floor/ceiling and Praat's default costs,
To PointProcess (periodic, cc), jitter (local), shimmer (local, dB), To Harmonicity (cc).
Accuracy is always against Praat on the *wideband* original:
  GPE       frames both call voiced whose F0 differ by more than 20 %
  voicing   frames where both agree voiced/unvoiced
  r         Pearson correlation over files of jitter, shimmer, HNR
Speed: ours (in-process analysis time, reported by the example), openSMILE eGeMAPSv02
low-level descriptors (opensmile.Smile.process_signal) and Praat on the same signals in
the same run, single-threaded, file decoding excluded; x real time = audio s / analysis s.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import parselmouth
from parselmouth.praat import call

F0_MIN, F0_MAX = 60.0, 500.0
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def default_data():
    for d in (os.path.join(REPO, "..", "shared", "data", "emodb-train"), "/work/shared/data/emodb-train"):
        if os.path.isdir(d):
            return os.path.abspath(d)
    return None


def build_example(build=True):
    if build:
        subprocess.run(["cargo", "build", "--release", "--example", "prosody_csv"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    exe = os.path.join(target, "release", "examples", "prosody_csv")
    if not os.path.exists(exe):
        sys.exit(f"built example not found at {exe}")
    return exe


def make_telephone(files, outdir):
    out = []
    for f in files:
        mid = os.path.join(outdir, os.path.basename(f) + ".8k.wav")
        dst = os.path.join(outdir, os.path.basename(f))
        subprocess.run(["sox", "-V1", f, "-r", "8000", "-e", "u-law", "-b", "8", mid, "sinc", "300-3400"], check=True)
        subprocess.run(["sox", "-V1", mid, "-r", "16000", "-e", "signed", "-b", "16", dst], check=True)
        os.remove(mid)
        out.append(dst)
    return out


def run_ours(exe, files, outdir):
    os.makedirs(outdir, exist_ok=True)
    t0 = time.perf_counter()
    res = subprocess.run([exe, "--summary", "--out-dir", outdir] + files, check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summ = {}
    for line in res.stdout.splitlines():
        j = json.loads(line)
        summ[j["file"]] = j
    frames = {}
    for f in files:
        name = os.path.basename(f)
        d = np.genfromtxt(os.path.join(outdir, os.path.splitext(name)[0] + ".csv"),
                          delimiter=",", names=True)
        frames[name] = d
    return summ, frames, wall


def praat_analysis(path):
    snd = parselmouth.Sound(path)
    pitch = snd.to_pitch_ac(time_step=0.01, pitch_floor=F0_MIN, max_number_of_candidates=15,
                            very_accurate=False, silence_threshold=0.03, voicing_threshold=0.45,
                            octave_cost=0.01, octave_jump_cost=0.35, voiced_unvoiced_cost=0.14,
                            pitch_ceiling=F0_MAX)
    pp = call(snd, "To PointProcess (periodic, cc)", F0_MIN, F0_MAX)
    jit = call(pp, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)
    shim = call([snd, pp], "Get shimmer (local_dB)", 0, 0, 0.0001, 0.02, 1.3, 1.6)
    harm = call(snd, "To Harmonicity (cc)", 0.01, F0_MIN, 0.1, 1.0)
    hnr = call(harm, "Get mean", 0, 0)
    return pitch.xs(), pitch.selected_array["frequency"], jit, shim, hnr


def frame_agreement(ours, praat_t, praat_f):
    """(n both voiced, n gross errors, n compared, n agree) for one file."""
    t = np.atleast_1d(ours["t"])
    f = np.atleast_1d(ours["f0_hz"])
    v = np.atleast_1d(ours["voiced"]) > 0.5
    if len(praat_t) == 0:
        return 0, 0, 0, 0
    dt = praat_t[1] - praat_t[0] if len(praat_t) > 1 else 0.01
    idx = np.rint((t - praat_t[0]) / dt).astype(int)
    ok = (idx >= 0) & (idx < len(praat_t))
    idx = idx[ok]
    near = np.abs(praat_t[idx] - t[ok]) <= 0.0051
    idx, fo, vo = idx[near], f[ok][near], v[ok][near]
    fp = praat_f[idx]
    vp = fp > 0
    both = vo & vp
    gross = np.abs(fo[both] / fp[both] - 1.0) > 0.2
    return int(both.sum()), int(gross.sum()), int(len(idx)), int((vo == vp).sum())


def pearson(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    m = np.isfinite(a) & np.isfinite(b)
    if m.sum() < 3:
        return float("nan"), int(m.sum())
    return float(np.corrcoef(a[m], b[m])[0, 1]), int(m.sum())


def load(path):
    import soundfile
    x, sr = soundfile.read(path, dtype="float32")
    return x, sr


def time_opensmile(files):
    import opensmile
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
                            num_workers=1)
    sigs = [load(f) for f in files]
    smile.process_signal(sigs[0][0], sigs[0][1])  # warm-up
    t0 = time.perf_counter()
    for x, sr in sigs:
        smile.process_signal(x, sr)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data(), help="directory of 16 kHz WAVs")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N files")
    ap.add_argument("--keep", help="keep CSVs and telephone WAVs in this directory")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--no-build", action="store_true", help="use the already built example")
    args = ap.parse_args()
    if not args.data or not os.path.isdir(args.data):
        sys.exit("no data: pass --data DIR (EmoDB lives in ../shared/data/emodb-train)")
    files = sorted(glob.glob(os.path.join(args.data, "*.wav")))
    if args.limit:
        files = files[: args.limit]
    exe = build_example(not args.no_build)
    work = args.keep or tempfile.mkdtemp(prefix="compare-praat-")
    os.makedirs(work, exist_ok=True)
    tel_dir = os.path.join(work, "telephone")
    os.makedirs(tel_dir, exist_ok=True)
    print(f"{len(files)} files from {args.data}; telephone versions in {tel_dir}", file=sys.stderr)
    tel_files = make_telephone(files, tel_dir)
    audio_s = sum(parselmouth.Sound(f).duration for f in files)

    sets = {"wideband": files, "telephone": tel_files}
    ours = {k: run_ours(exe, v, os.path.join(work, "ours-" + k)) for k, v in sets.items()}

    t0 = time.perf_counter()
    praat_wb = {os.path.basename(f): praat_analysis(f) for f in files}
    praat_s = time.perf_counter() - t0
    praat_tel = {os.path.basename(f): praat_analysis(f) for f in tel_files}

    rows = {}
    for k in sets:
        summ, frames, wall = ours[k]
        tot = np.zeros(4, int)
        tot_p = np.zeros(4, int)
        jo, jp, so, sp, ho, hp = [], [], [], [], [], []
        for name, (pt, pf, pj, ps, ph) in praat_wb.items():
            tot += frame_agreement(frames[name], pt, pf)
            if k == "telephone":
                qt, qf = praat_tel[name][0], praat_tel[name][1]
                tot_p += frame_agreement({"t": qt, "f0_hz": qf, "voiced": (qf > 0).astype(float)}, pt, pf)
            s = summ[name]
            jo.append(s["jitter_local"] if s["jitter_local"] is not None else np.nan)
            so.append(s["shimmer_local_db"] if s["shimmer_local_db"] is not None else np.nan)
            ho.append(s["hnr_db_mean"] if s["hnr_db_mean"] is not None else np.nan)
            jp.append(pj); sp.append(ps); hp.append(ph)
        ana = sum(s["analysis_s"] for s in summ.values())
        rows[k] = {
            "gpe_pct": 100.0 * tot[1] / max(tot[0], 1),
            "voicing_agreement_pct": 100.0 * tot[3] / max(tot[2], 1),
            "jitter_r": pearson(jo, jp)[0],
            "shimmer_r": pearson(so, sp)[0],
            "hnr_r": pearson(ho, hp)[0],
            "n_jitter": pearson(jo, jp)[1],
            "ours_xrt": audio_s / ana,
            "ours_process_xrt": audio_s / wall,
        }
        if k == "telephone":
            rows[k]["praat_tel_gpe_pct"] = 100.0 * tot_p[1] / max(tot_p[0], 1)
            rows[k]["praat_tel_voicing_pct"] = 100.0 * tot_p[3] / max(tot_p[2], 1)
            # Praat's own jitter/shimmer on the telephone version vs on the wideband original:
            # how much of the per-file variation survives the channel at all.
            names = list(praat_wb)
            rows[k]["praat_tel_jitter_r"] = pearson([praat_tel[n][2] for n in names],
                                                    [praat_wb[n][2] for n in names])[0]
            rows[k]["praat_tel_shimmer_r"] = pearson([praat_tel[n][3] for n in names],
                                                     [praat_wb[n][3] for n in names])[0]
            # Ours on the telephone version vs Praat on the same telephone version.
            rows[k]["same_channel_jitter_r"] = pearson(jo, [praat_tel[n][2] for n in names])[0]
            rows[k]["same_channel_shimmer_r"] = pearson(so, [praat_tel[n][3] for n in names])[0]
    smile_s = time_opensmile(files)

    w, t = rows["wideband"], rows["telephone"]
    print()
    print(f"calltone prosody vs Praat {parselmouth.PRAAT_VERSION} (reference: Praat on the wideband original), "
          f"{len(files)} files, {audio_s:.0f} s of audio")
    print(f"{'':34}{'wideband':>12}{'telephone':>12}{'target':>14}")
    print(f"{'GPE (>20 %, both voiced)':34}{w['gpe_pct']:>11.2f}%{t['gpe_pct']:>11.2f}%{'<=3 / <=6 %':>14}")
    print(f"{'voicing agreement':34}{w['voicing_agreement_pct']:>11.2f}%{t['voicing_agreement_pct']:>11.2f}%{'>=90 %':>14}")
    print(f"{'jitter (local) r over files':34}{w['jitter_r']:>12.3f}{t['jitter_r']:>12.3f}{'>=0.8':>14}")
    print(f"{'shimmer (local, dB) r over files':34}{w['shimmer_r']:>12.3f}{t['shimmer_r']:>12.3f}{'>=0.8':>14}")
    print(f"{'HNR mean r over files':34}{w['hnr_r']:>12.3f}{t['hnr_r']:>12.3f}{'':>14}")
    print(f"{'(Praat itself on telephone: GPE)':34}{'':>12}{t['praat_tel_gpe_pct']:>11.2f}%")
    print(f"{'(Praat itself on telephone: voicing)':34}{'':>12}{t['praat_tel_voicing_pct']:>11.2f}%")
    print(f"{'(Praat itself on telephone: jitter r)':34}{'':>12}{t['praat_tel_jitter_r']:>12.3f}")
    print(f"{'(Praat itself on telephone: shimmer r)':34}{'':>12}{t['praat_tel_shimmer_r']:>12.3f}")
    print(f"{'(vs Praat on the same telephone audio: jitter r)':34}{'':>0}{t['same_channel_jitter_r']:>10.3f}")
    print(f"{'(vs Praat on the same telephone audio: shimmer r)':34}{'':>0}{t['same_channel_shimmer_r']:>9.3f}")
    print()
    print("speed, one core, x real time (wideband set)")
    print(f"{'  ours (in-process analysis)':34}{w['ours_xrt']:>12.0f}x")
    print(f"{'  ours (whole process incl. WAV/CSV)':34}{w['ours_process_xrt']:>12.0f}x")
    print(f"{'  openSMILE eGeMAPSv02 LLD':34}{audio_s / smile_s:>12.0f}x")
    print(f"{'  Praat pitch+pulses+jitter/shimmer+HNR':34}{audio_s / praat_s:>12.0f}x")
    print(f"{'  ours / openSMILE':34}{w['ours_xrt'] / (audio_s / smile_s):>12.1f}x   (target >= 5x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"files": len(files), "audio_s": audio_s, "rows": rows,
                       "opensmile_xrt": audio_s / smile_s, "praat_xrt": audio_s / praat_s}, fh, indent=2)


if __name__ == "__main__":
    main()
