#!/usr/bin/env bash
# Webhook benchmark (issue 19): N small uploads over SFTP (paramiko, one session) without a
# webhook rule, then N more with a rule matching everything, delivered to a receiver on
# 127.0.0.1 (allowed by FILEGATE_WEBHOOKS_ALLOW_PRIVATE). Prints the upload rate with and
# without the rule (target: < 5 % slower), the time from the last upload to the last
# delivery, deliveries per second, and p50/p99 latency from an upload's end to its receipt.
#
# usage: bench/webhooks.sh [path/to/filegate]   (N=10000 SIZE=1024 may be overridden)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
N="${N:-10000}"; SIZE="${SIZE:-1024}"
python3 -c 'import paramiko' 2>/dev/null || pip install -q paramiko

work="$(mktemp -d /tmp/filegate-hookbench.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export FILEGATE_DATA_DIR="$work/fg" FILEGATE_SFTP_LISTEN="127.0.0.1:$(free_port)"
export FILEGATE_API_LISTEN="127.0.0.1:$(free_port)" FILEGATE_WEBHOOKS_ALLOW_PRIVATE=127.0.0.0/8
cat > "$work/filegate.toml" <<CFG
[auth.lockout]
enabled = false
[ftp]
enabled = false
[webdav]
enabled = false
CFG
fg() { "$bin" --config "$work/filegate.toml" "$@"; }
fg user add bench --password-stdin <<<"bench-password-1" >/dev/null
fg user grant bench / full >/dev/null
key="$(fg key create --site-wide --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
"$bin" --config "$work/filegate.toml" serve >"$work/fg.out" 2>"$work/fg.log" & pids+=($!)
sleep 1.5

# The receiver runs in its own process (not competing with the uploader for Python's GIL);
# it appends "path receipt-time" lines to a file.
hook_port="$(free_port)"
python3 - "$hook_port" "$work/received.txt" <<'PY' & pids+=($!)
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(f"{json.loads(body)['path']} {time.time()}\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
sleep 0.5

python3 - "$N" "$SIZE" "${FILEGATE_SFTP_LISTEN##*:}" "$FILEGATE_API_LISTEN" "$key" "$hook_port" "$work/received.txt" <<'PY'
import json, sys, time, urllib.request
import paramiko

n, size, sftp_port, api, key = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
hook = f"http://127.0.0.1:{sys.argv[6]}/hook"
def received():
    got = {}
    with open(sys.argv[7]) as f:
        for line in f:
            if line.endswith("\n"):
                p, t = line.rsplit(" ", 1)
                got.setdefault(p, []).append(float(t))
    return got

t = paramiko.Transport(("127.0.0.1", sftp_port)); t.connect(username="bench", password="bench-password-1")
sftp = paramiko.SFTPClient.from_transport(t)
data = b"x" * size
def run(folder):
    sftp.mkdir(folder)
    ends = {}
    t0 = time.time()
    for i in range(n):
        with sftp.open(f"{folder}/f{i}.bin", "wb") as f:
            f.write(data)
        ends[f"{folder[1:]}/f{i}.bin"] = time.time()
    return n / (time.time() - t0), ends

rate_without, _ = run("/plain")
req = urllib.request.Request(f"http://{api}/api/rest/v1/behaviors", method="POST",
    data=json.dumps({"path": "", "behavior": "webhook", "value": {"urls": [hook], "triggers": ["create"]}}).encode(),
    headers={"X-FilesAPI-Key": key, "Content-Type": "application/json"})
urllib.request.urlopen(req).read()
rate_with, ends = run("/hooked")
last_upload = max(ends.values())
deadline = time.time() + 600
while time.time() < deadline:
    received_now = received()
    if sum(1 for p in ends if p in received_now) >= n: break
    time.sleep(0.2)
received = received()
if True:
    lat = sorted(received[p][0] - ends[p] for p in ends if p in received)
    dup = sum(len(v) - 1 for v in received.values())
    first = min(v[0] for p, v in received.items() if p in ends)
    last = max(v[0] for p, v in received.items() if p in ends)
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
print(f"uploads: {n} x {size} B over one SFTP session")
print(f"upload rate without rule: {rate_without:.0f}/s, with rule: {rate_with:.0f}/s "
      f"({(1 - rate_with / rate_without) * 100:+.1f}% slower; target < 5%)")
print(f"deliveries: {len(lat)}/{n} (duplicates: {dup}); last delivery {max(0, last - last_upload):.2f}s after the last upload; "
      f"{len(lat) / max(last - first, 1e-9):.0f} deliveries/s")
print(f"latency upload end -> receipt: p50 {pct(0.50):.0f} ms, p99 {pct(0.99):.0f} ms")
PY
