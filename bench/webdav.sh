#!/usr/bin/env bash
# WebDAV benchmark: filegate beside nginx (dav + dav_ext modules, Basic auth) on 127.0.0.1,
# both serving the same folder: 1 GiB GET and PUT MB/s with curl, PROPFIND Depth 1 on a
# folder of 10 000 files (ms), authenticated PROPFIND Depth 0 requests/s with keep-alive
# (wrk, 1 and 20 connections). Prints filegate/nginx ratios.
#
# usage: bench/webdav.sh [path/to/filegate]   (needs root: installs nginx, its dav-ext
#        module and wrk; SIZE_MB=1024 FILES=10000 SECONDS_EACH=5 may be overridden)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
SIZE_MB="${SIZE_MB:-1024}"; FILES="${FILES:-10000}"; SECONDS_EACH="${SECONDS_EACH:-5}"
if [ ! -x /usr/sbin/nginx ] || [ ! -e /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ] || ! command -v wrk >/dev/null; then
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-http-dav-ext wrk >/dev/null
fi

work="$(mktemp -d /tmp/filegate-davbench.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

store="$work/files"; mkdir -p "$store/bench/many" "$store/nginx-up" "$store/filegate-up"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$store/bench/big.bin"
cp "$store/bench/big.bin" "$work/upload.bin"
python3 - "$store/bench/many" "$FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"file-{i:05d}.txt"), "w") as f:
        f.write("x")
PY

ng_port="$(free_port)"
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
}
CFG
/usr/sbin/nginx -c "$work/nginx.conf" & pids+=($!)

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
"$bin" --config "$work/filegate.toml" serve >"$work/fg.out" 2>"$work/fg.log" & pids+=($!)
sleep 1.5
fg_port="${FILEGATE_WEBDAV_LISTEN##*:}"

port() { if [ "$1" = filegate ]; then echo "$fg_port"; else echo "$ng_port"; fi; }
now() { date +%s.%N; }
declare -A R
transfer() { # server direction -> MB/s
    local p t0 t1; p=$(port "$1"); t0=$(now)
    if [ "$2" = get ]; then curl -sS -f -u bench:bench-password-1 -o /dev/null "http://127.0.0.1:$p/bench/big.bin"
    else curl -sS -f -u bench:bench-password-1 -T "$work/upload.bin" "http://127.0.0.1:$p/$1-up/up.bin" >/dev/null; fi
    t1=$(now); python3 -c "print(f'{$SIZE_MB/($t1-$t0):.0f}')"
}
propfind_ms() { # server -> best of 3, ms
    local p best=999999 t0 t1 ms; p=$(port "$1")
    for _ in 1 2 3 4; do
        t0=$(now)
        curl -sS -f -u bench:bench-password-1 -X PROPFIND -H "Depth: 1" -o "$work/pf-$1.xml" "http://127.0.0.1:$p/bench/many/"
        t1=$(now); ms=$(python3 -c "print(int(($t1-$t0)*1000))")
        [ "$ms" -lt "$best" ] && best=$ms
    done
    grep -o "file-0[0-9]*\.txt" "$work/pf-$1.xml" | sort -u | wc -l > "$work/pf-$1.count"
    echo "$best"
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

for dir in get put; do
    for server in nginx filegate; do
        transfer "$server" "$dir" >/dev/null
        best=0; for _ in 1 2; do v=$(transfer "$server" "$dir"); [ "$v" -gt "$best" ] && best=$v; done
        R["$server $dir"]=$best
    done
done
cmp "$work/upload.bin" "$store/filegate-up/up.bin" || { echo "filegate upload differs"; exit 1; }
for server in nginx filegate; do R["$server propfind"]=$(propfind_ms "$server"); done
[ "$(cat "$work/pf-filegate.count")" = "$FILES" ] || { echo "filegate PROPFIND listed $(cat "$work/pf-filegate.count") of $FILES files"; exit 1; }
for c in 1 20; do for server in nginx filegate; do R["$server rps $c"]=$(rps "$server" "$c"); done; done

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "WebDAV benchmark: ${SIZE_MB} MiB file, curl and wrk on 127.0.0.1, $(nproc) cores (nginx: 2 workers)"
printf '%-46s %10s %10s %8s\n' "measure" "filegate" "nginx" "ratio"
for dir in get put; do
    f=${R["filegate $dir"]}; o=${R["nginx $dir"]}
    printf '%-46s %10s %10s %8s\n' "$dir MB/s" "$f" "$o" "$(ratio "$f" "$o")"
done
f=${R["filegate propfind"]}; o=${R["nginx propfind"]}
printf '%-46s %10s %10s %8s\n' "PROPFIND Depth 1, $FILES files (ms, lower wins)" "$f" "$o" "$(ratio "$f" "$o")"
for c in 1 20; do
    f=${R["filegate rps $c"]}; o=${R["nginx rps $c"]}
    printf '%-46s %10s %10s %8s\n' "PROPFIND Depth 0 req/s, Basic auth, $c conn" "$f" "$o" "$(ratio "$f" "$o")"
done
