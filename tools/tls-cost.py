#!/usr/bin/env python3
"""What TLS on the HTTP listeners costs, measured on a real `calltone serve`, plain and with
`serve.tls_cert_file` / `tls_key_file` (a P-256 certificate made here by openssl):

  * handshake: N fresh connections each doing GET /healthz (HTTP/1.0, one request per
    connection), client-side latency p50/p99 and the server's CPU per connection;
  * bulk media: one /media/l16 stream sending MEGABYTES of stereo 16 kHz audio as fast as the
    socket takes it (the pacing guard drops what is beyond 3x real time, so this is the cost
    of receiving, decrypting and framing), the sender's MB/s and the server's CPU per 100 MB;
  * real-time calls: CALLS /media/l16 stereo streams of SECONDS each at real time, the
    server's total CPU (analysis included: the TLS share is the difference).

    tools/tls-cost.py target/release/calltone [N] [MEGABYTES] [CALLS] [SECONDS]

Uses models/ggml-tiny.en.bin and demo/demo-call.wav; MQTT goes to a closed port (events wait
in the outbox); everything binds 127.0.0.1.
"""
import json, os, shutil, socket, ssl, struct, subprocess, sys, tempfile, threading, time, wave

binary = os.path.abspath(sys.argv[1])
n_conn = int(sys.argv[2]) if len(sys.argv) > 2 else 300
megabytes = float(sys.argv[3]) if len(sys.argv) > 3 else 200
calls = int(sys.argv[4]) if len(sys.argv) > 4 else 8
seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 30
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK = os.sysconf("SC_CLK_TCK")
tmp = tempfile.mkdtemp()
cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key,
                "-out", cert], check=True, capture_output=True)

w = wave.open(os.path.join(root, "demo/demo-call.wav"))
assert w.getnchannels() == 2 and w.getframerate() == 16000
stereo = w.readframes(w.getnframes())


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


def start(tls):
    http, media = free_port(), free_port()
    d = tempfile.mkdtemp(dir=tmp)
    tls_lines = f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n' if tls else ""
    cfg = os.path.join(d, "calltone.toml")
    with open(cfg, "w") as f:
        f.write(f"""[asr]
model = "{root}/models/ggml-tiny.en.bin"
[serve]
http = "127.0.0.1:{http}"
media = "127.0.0.1:{media}"
audiosocket = ""
data_dir = "{d}/data"
{tls_lines}[mqtt]
url = "mqtt://127.0.0.1:1"
site = "tls{os.getpid()}"
box = "box1"
[security]
max_connections = 4096
""")
    p = subprocess.Popen([binary, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(d, "serve.log"), "w"), cwd=root)
    t0 = time.time()
    while not (port_open(http) and port_open(media)):
        if p.poll() is not None or time.time() - t0 > 60:
            sys.exit("serve did not start; log: " + os.path.join(d, "serve.log"))
        time.sleep(0.1)
    return p, http, media


def cpu_s(p):
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


ctx = ssl.create_default_context(cafile=cert)


def connect(port, tls):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if tls:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


def handshakes(p, port, tls):
    lat = []
    c0 = cpu_s(p)
    for _ in range(n_conn):
        t = time.perf_counter()
        s = connect(port, tls)
        s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        body = b""
        while True:
            try:
                b = s.recv(4096)
            except ssl.SSLError:
                break
            if not b:
                break
            body += b
        s.close()
        assert b" 200 " in body[:20], body[:80]
        lat.append(time.perf_counter() - t)
    cpu = cpu_s(p) - c0
    lat.sort()
    return lat[len(lat) // 2] * 1000, lat[int(0.99 * len(lat))] * 1000, cpu / n_conn * 1000


def l16(port, tls, call_id):
    s = connect(port, tls)
    s.sendall((f"GET /media/l16 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += s.recv(1)
    assert resp.startswith(b"HTTP/1.1 101"), resp
    meta = json.dumps({"call_id": call_id, "sample_rate": 16000, "channels": 2}).encode()
    s.sendall(bytes([0x81, 0x80 | len(meta)]) + b"\0\0\0\0" + meta)
    return s


def frame(data):
    return bytes([0x82, 0x80 | 126]) + struct.pack(">H", len(data)) + b"\0\0\0\0" + data


def close(s):
    try:
        s.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack(">H", 1000))
        s.settimeout(5)
        while s.recv(4096):
            pass
    except (OSError, ssl.SSLError):
        pass
    s.close()


def bulk(p, port, tls):
    s = l16(port, tls, f"bulk{int(tls)}")
    chunk = 6400  # 100 ms of stereo 16 kHz
    frames = [frame(stereo[i:i + chunk]) for i in range(0, len(stereo) - chunk, chunk)]
    total = int(megabytes * 1e6)
    c0, t0, sent, i = cpu_s(p), time.perf_counter(), 0, 0
    while sent < total:
        f = frames[i % len(frames)]
        s.sendall(f)
        sent += len(f)
        i += 1
    el = time.perf_counter() - t0
    close(s)
    time.sleep(1)
    return sent / 1e6 / el, (cpu_s(p) - c0) / (sent / 1e8)


def realtime(p, port, tls):
    chunk = 640 * 2  # 20 ms stereo
    c0 = cpu_s(p)

    def one(k):
        s = l16(port, tls, f"rt{int(tls)}-{k}")
        t0 = time.time()
        n = int(seconds / 0.02)
        for j in range(n):
            ahead = j * 0.02 - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)
            off = (j * chunk) % (len(stereo) - chunk)
            s.sendall(frame(stereo[off:off + chunk]))
        close(s)

    ts = [threading.Thread(target=one, args=(k,)) for k in range(calls)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    time.sleep(3)
    return cpu_s(p) - c0


rows = {}
for tls in (False, True):
    p, http, media = start(tls)
    try:
        hs = handshakes(p, http, tls)
        bk = bulk(p, media, tls)
        rt = realtime(p, media, tls)
    finally:
        p.terminate()
        p.wait(30)
    rows["TLS" if tls else "plain"] = (hs, bk, rt)

print(f"binary: {binary}")
print(f"{'':6} | {'GET /healthz, new conn p50 / p99 ms':>36} | {'server CPU ms/conn':>18} | "
      f"{'bulk l16 MB/s':>13} | {'server CPU s/100 MB':>19} | "
      f"{f'{calls} real-time calls x {seconds:.0f} s: server CPU s':>36}")
for name, (hs, bk, rt) in rows.items():
    print(f"{name:6} | {hs[0]:>17.2f} / {hs[1]:<16.2f} | {hs[2]:>18.2f} | {bk[0]:>13.1f} | "
          f"{bk[1]:>19.2f} | {rt:>36.1f}")
shutil.rmtree(tmp, ignore_errors=True)
