#!/usr/bin/env python3
"""Fast-sender attack on a real `calltone serve`: one AudioSocket call (two legs) sends
SECONDS of the demo call as fast as TCP allows, while /healthz is polled every 100 ms and the
process's RSS sampled. Prints peak RSS, /healthz latency (p50/p99/max) and how long sending
took. Works against any calltone binary with the AudioSocket listener, so the same run
measures before/after a change:

    tools/fast-sender.py target/release/calltone [SECONDS] [CALLS] [PACE]

With CALLS > 1 and PACE > 0 it is the busy-box attack instead: CALLS two-leg calls, each leg
sending SECONDS of audio at PACE × real time (at most the pacing guard's 3×, so nothing is
dropped and every frame is analysed), which loads the analysis rather than the buffers:

    tools/fast-sender.py target/release/calltone 60 24 3

Uses the system Mosquitto on 127.0.0.1:1883 and the model at models/ggml-tiny.en.bin;
everything binds 127.0.0.1 only.
"""
import os, socket, struct, subprocess, sys, tempfile, threading, time, wave

binary = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
calls = int(sys.argv[3]) if len(sys.argv) > 3 else 1
pace = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


http, asp, media = free_port(), free_port(), free_port()
tmp = tempfile.mkdtemp()
cfg = os.path.join(tmp, "calltone.toml")
with open(cfg, "w") as f:
    f.write(f"""[asr]
model = "{root}/models/ggml-tiny.en.bin"
[serve]
http = "127.0.0.1:{http}"
audiosocket = "127.0.0.1:{asp}"
data_dir = "{tmp}/data"
[mqtt]
url = "mqtt://127.0.0.1:1883"
site = "fast{os.getpid()}"
box = "box1"
""")
log = open(os.path.join(tmp, "serve.log"), "w")
# The new binary has a separate media listener (default 8081): give it a free port.
has_media = "--media" in subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout
extra = ["--media", f"127.0.0.1:{media}"] if has_media else []
proc = subprocess.Popen([binary, "serve", "--config", cfg] + extra,
                        stdout=subprocess.DEVNULL, stderr=log, cwd=root)


def port_open(p):
    try:
        socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
        return True
    except OSError:
        return False


t0 = time.time()
while not (port_open(http) and port_open(asp)):
    if proc.poll() is not None or time.time() - t0 > 60:
        sys.exit("serve did not start; log: " + os.path.join(tmp, "serve.log"))
    time.sleep(0.1)

w = wave.open(os.path.join(root, "demo/demo-call.wav"))
raw = w.readframes(w.getnframes())
assert w.getnchannels() == 2 and w.getframerate() == 16000
cust = b"".join(raw[i:i + 2] for i in range(0, len(raw), 4))
agent = b"".join(raw[i + 2:i + 4] for i in range(0, len(raw), 4))

stop = threading.Event()
lat, rss = [], []


def poll():
    while not stop.is_set():
        t = time.time()
        try:
            s = socket.create_connection(("127.0.0.1", http), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            while s.recv(4096):
                pass
            s.close()
            lat.append(time.time() - t)
        except OSError:
            lat.append(float("inf"))
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
        time.sleep(0.1)


def leg(pcm, uuid):
    s = socket.create_connection(("127.0.0.1", asp))
    s.sendall(struct.pack(">BH", 1, 16) + uuid)
    frame = 640  # 20 ms at 16 kHz
    total = int(seconds * 16000 * 2)
    sent = 0
    start = time.time()
    try:
        while sent < total:
            if pace > 0:
                ahead = sent / 32000 / pace - (time.time() - start)
                if ahead > 0:
                    time.sleep(ahead)
            off = sent % (len(pcm) - frame)
            s.sendall(struct.pack(">BH", 0x12, frame) + pcm[off:off + frame])
            sent += frame
        s.sendall(struct.pack(">BH", 0, 0))
    except OSError as e:
        print("leg closed by server:", e)
    s.close()


poller = threading.Thread(target=poll)
poller.start()
time.sleep(1.0)
base_rss = rss[-1] if rss else 0
t1 = time.time()
legs = []
for c in range(calls):
    uuid = bytes([c % 256] + list(range(1, 16)))
    legs.append(threading.Thread(target=leg, args=(cust, uuid)))
    legs[-1].start()
    time.sleep(0.05)
    legs.append(threading.Thread(target=leg, args=(agent, uuid)))
    legs[-1].start()
for t in legs:
    t.join()
send_s = time.time() - t1
time.sleep(5.0)
stop.set()
poller.join()
proc.terminate()
try:
    proc.wait(30)
except subprocess.TimeoutExpired:
    proc.kill()

fin = sorted(x for x in lat if x != float("inf"))
def pct(p):
    return fin[min(len(fin) - 1, int(p * len(fin)))] * 1000 if fin else float("nan")
print(f"binary: {binary}")
print(f"{calls} call(s): sent {seconds:.0f} s of two-leg audio each in {send_s:.1f} s ({seconds / send_s:.0f}x real time)")
print(f"RSS: idle {base_rss:.0f} MiB, peak {max(rss):.0f} MiB")
print(f"/healthz: n={len(lat)} p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {pct(1.0):.1f} ms, failed {len(lat) - len(fin)}")
