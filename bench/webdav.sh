#!/usr/bin/env bash
# WebDAV benchmark: filegate beside nginx (dav + dav_ext modules, Basic auth, sendfile on)
# on 127.0.0.1, both serving the same folder, measured alternately (bench/lib.sh): 1 GiB GET
# and PUT with curl over HTTP and over HTTPS (same certificate), PROPFIND Depth 1 on a
# folder of 10 000 files (ms), authenticated PROPFIND Depth 0 requests/s with keep-alive
# (wrk, 1 and 20 connections). Prints medians, min–max, ratios, CPU seconds per GiB.
#
# usage: bench/webdav.sh [path/to/filegate]   (needs root: installs nginx, its dav-ext
#        module and wrk; SIZE_MB=1024 FILES=10000 SECONDS_EACH=5 RUNS=5 may be overridden)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${SIZE_MB:-1024}"; FILES="${FILES:-10000}"; SECONDS_EACH="${SECONDS_EACH:-5}"
if [ ! -x /usr/sbin/nginx ] || [ ! -e /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ] || ! command -v wrk >/dev/null; then
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-http-dav-ext wrk >/dev/null
fi

work="$(mktemp -d /tmp/filegate-davbench.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; ab_untrack; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

store="$work/files"; mkdir -p "$store/bench/many" "$store/nginx-up" "$store/filegate-up"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$store/bench/big.bin"
cp "$store/bench/big.bin" "$work/upload.bin"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
python3 - "$store/bench/many" "$FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"file-{i:05d}.txt"), "w") as f:
        f.write("x")
PY

ng_port="$(free_port)"; ngs_port="$(free_port)"
printf 'bench:%s\n' "$(openssl passwd -apr1 bench-password-1)" > "$work/htpasswd"
mkdir -p "$work/nginx-tmp"
cat > "$work/nginx.conf" <<CFG
user root;
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $work/nginx-tmp;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$ng_port;
        root $store;
        auth_basic "bench";
        auth_basic_user_file $work/htpasswd;
        dav_methods PUT DELETE MKCOL COPY MOVE;
        dav_ext_methods PROPFIND OPTIONS;
        create_full_put_path on;
    }
    server {
        listen 127.0.0.1:$ngs_port ssl;
        ssl_certificate $work/tls.crt;
        ssl_certificate_key $work/tls.key;
        root $store;
        auth_basic "bench";
        auth_basic_user_file $work/htpasswd;
        dav_methods PUT DELETE MKCOL COPY MOVE;
        dav_ext_methods PROPFIND OPTIONS;
        create_full_put_path on;
    }
}
CFG
/usr/sbin/nginx -c "$work/nginx.conf" & ng_pid=$!; pids+=($ng_pid)

export FILEGATE_DATA_DIR="$work/fg" FILEGATE_WEBDAV_LISTEN="127.0.0.1:$(free_port)"
export FILEGATE_SFTP_LISTEN=127.0.0.1:0 FILEGATE_API_LISTEN=127.0.0.1:0 FILEGATE_FTP_LISTEN=127.0.0.1:0
cat > "$work/filegate.toml" <<CFG
[server]
storage_dir = "$store"
[auth.lockout]
enabled = false
[webdav]
max_requests_per_address = 1000
CFG
"$bin" --config "$work/filegate.toml" user add bench --password-stdin <<<"bench-password-1" >/dev/null
"$bin" --config "$work/filegate.toml" user grant bench / full >/dev/null
"$bin" --config "$work/filegate.toml" serve >"$work/fg.out" 2>"$work/fg.log" & fg_pid=$!; pids+=($fg_pid)
# A second filegate on the same data folder and storage, serving WebDAV over HTTPS.
fgs_port="$(free_port)"
sed "s|^\[webdav\]|[webdav]\ntls_cert = \"$work/tls.crt\"\ntls_key = \"$work/tls.key\"|" "$work/filegate.toml" > "$work/filegate-tls.toml"
fgs() { FILEGATE_DATA_DIR="$work/fgs" FILEGATE_WEBDAV_LISTEN="127.0.0.1:$fgs_port" "$bin" --config "$work/filegate-tls.toml" "$@"; }
fgs user add bench --password-stdin <<<"bench-password-1" >/dev/null
fgs user grant bench / full >/dev/null
FILEGATE_DATA_DIR="$work/fgs" FILEGATE_WEBDAV_LISTEN="127.0.0.1:$fgs_port" \
    "$bin" --config "$work/filegate-tls.toml" serve >"$work/fgs.out" 2>"$work/fgs.log" & fgs_pid=$!; pids+=($fgs_pid)
sleep 1.5
fg_port="${FILEGATE_WEBDAV_LISTEN##*:}"

port() { case "$1" in filegate) echo "$fg_port";; nginx) echo "$ng_port";; filegate-tls) echo "$fgs_port";; nginx-tls) echo "$ngs_port";; esac; }
server_pid() { case "$1" in filegate) echo "$fg_pid";; filegate-tls) echo "$fgs_pid";; *) echo "$ng_pid";; esac; }
scheme() { case "$1" in *-tls) echo https;; *) echo http;; esac; }
now() { date +%s.%N; }
declare -A R
get() { curl -sS -f -k -u bench:bench-password-1 -o /dev/null "$(scheme "$1")://127.0.0.1:$(port "$1")/bench/big.bin"; }
put() { curl -sS -f -k -u bench:bench-password-1 -T "$work/upload.bin" "$(scheme "$1")://127.0.0.1:$(port "$1")/${1%-tls}-up/up-$(scheme "$1").bin" >/dev/null; }
propfind_ms() { # server -> ms for one PROPFIND Depth 1 of the big folder
    local p t0 t1; p=$(port "$1")
    t0=$(now)
    curl -sS -f -u bench:bench-password-1 -X PROPFIND -H "Depth: 1" -o "$work/pf-$1.xml" "http://127.0.0.1:$p/bench/many/"
    t1=$(now)
    grep -o "file-0[0-9]*\.txt" "$work/pf-$1.xml" | sort -u | wc -l > "$work/pf-$1.count"
    python3 -c "print(int(($t1-$t0)*1000))"
}
cat > "$work/propfind.lua" <<'LUA'
wrk.method = "PROPFIND"
wrk.headers["Depth"] = "0"
wrk.headers["Authorization"] = "Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQtMQ=="
LUA
rps() { # server connections -> requests/s
    local p; p=$(port "$1")
    wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "${SECONDS_EACH}s" -s "$work/propfind.lua" "http://127.0.0.1:$p/bench/big.bin" | awk '/Requests\/sec/ {printf "%d\n", $2}'
}

echo "load before the transfers: $(ab_load)" >&2
ab "GET MB/s" "$SIZE_MB" get filegate nginx
ab "PUT MB/s" "$SIZE_MB" put filegate nginx
cmp "$work/upload.bin" "$store/filegate-up/up-http.bin" || { echo "filegate upload differs"; exit 1; }
ab "HTTPS GET MB/s" "$SIZE_MB" get filegate-tls nginx-tls
ab "HTTPS PUT MB/s" "$SIZE_MB" put filegate-tls nginx-tls
cmp "$work/upload.bin" "$store/filegate-up/up-https.bin" || { echo "filegate HTTPS upload differs"; exit 1; }
one "PROPFIND D1 $FILES files" "ms, lower wins" propfind_ms filegate nginx
[ "$(cat "$work/pf-filegate.count")" = "$FILES" ] || { echo "filegate PROPFIND listed $(cat "$work/pf-filegate.count") of $FILES files"; exit 1; }
rps1() { rps "$1" 1; }
rps20() { rps "$1" 20; }
one "PROPFIND D0 1 conn" "req/s" rps1 filegate nginx
one "PROPFIND D0 20 conn" "req/s" rps20 filegate nginx

ab_table "WebDAV benchmark: ${SIZE_MB} MiB file, curl and wrk on 127.0.0.1 (nginx: 2 workers, sendfile on; HTTPS rows: filegate-tls vs nginx-tls)" filegate nginx
