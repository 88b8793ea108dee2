#!/usr/bin/env bash
# FTP benchmark: filegate beside vsftpd on 127.0.0.1, both serving the same folder, measured
# with the same clients (curl for transfers, Python ftplib for logins and idle sessions),
# alternately (bench/lib.sh): downloads and uploads over plain FTP and over explicit FTPS
# (AUTH TLS, PROT P; vsftpd ssl_enable with the same certificate), logins/s, memory for 50
# idle sessions. Prints medians, min–max, ratios and both servers' CPU seconds per GiB.
#
# usage: bench/ftp.sh [path/to/filegate]   (needs root: installs vsftpd, adds user "fgbench";
#        SIZE_MB=1024 LOGINS=200 IDLE=50 RUNS=5 may be overridden)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${SIZE_MB:-1024}"; LOGINS="${LOGINS:-200}"; IDLE="${IDLE:-50}"
[ -x /usr/sbin/vsftpd ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vsftpd >/dev/null; }
id fgbench >/dev/null 2>&1 || useradd --create-home --shell /bin/sh fgbench
echo "fgbench:bench-password-1" | chpasswd

work="$(mktemp -d /tmp/filegate-ftpbench.XXXXXX)"; chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; ab_untrack; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

store="$work/data/files"; mkdir -p "$store/bench"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$store/bench/big.bin"
cp "$store/bench/big.bin" "$work/upload.bin"
chown -R fgbench "$work/data"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

vs_port="$(free_port)"
cat > "$work/vsftpd.conf" <<CFG
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$vs_port
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
pasv_enable=YES
pasv_min_port=51000
pasv_max_port=51099
pasv_address=127.0.0.1
seccomp_sandbox=NO
pam_service_name=vsftpd
max_clients=1000
max_per_ip=1000
xferlog_enable=NO
dirmessage_enable=NO
use_localtime=NO
secure_chroot_dir=$work/empty
ssl_enable=YES
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=NO
ssl_ciphers=HIGH
rsa_cert_file=$work/tls.crt
rsa_private_key_file=$work/tls.key
CFG
mkdir -p "$work/empty"
/usr/sbin/vsftpd "$work/vsftpd.conf" & vs_pid=$!; pids+=($vs_pid)

export FILEGATE_DATA_DIR="$work/fg" FILEGATE_FTP_LISTEN="127.0.0.1:$(free_port)"
export FILEGATE_SFTP_LISTEN=127.0.0.1:0 FILEGATE_API_LISTEN=127.0.0.1:0
cat > "$work/filegate.toml" <<CFG
[server]
storage_dir = "$store"
[auth.lockout]
enabled = false
[ftp]
passive_ports = "52000-52099"
require_tls = "never"
tls_cert = "$work/tls.crt"
tls_key = "$work/tls.key"
[webdav]
enabled = false
CFG
"$bin" --config "$work/filegate.toml" user add bench --password-stdin <<<"bench-password-1" >/dev/null
"$bin" --config "$work/filegate.toml" user grant bench / full >/dev/null
key="$("$bin" --config "$work/filegate.toml" key create --user bench --name bench-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
"$bin" --config "$work/filegate.toml" serve >"$work/fg.out" 2>"$work/fg.log" & fg_pid=$!; pids+=($fg_pid)
sleep 1.5
fg_port="${FILEGATE_FTP_LISTEN##*:}"

url() { # server path
    if [ "$1" = filegate ]; then echo "ftp://bench:bench-password-1@127.0.0.1:$fg_port/bench/$2"
    else echo "ftp://fgbench:bench-password-1@127.0.0.1:$vs_port/%2F${store#/}/bench/$2"; fi
}
server_pid() { if [ "$1" = filegate ]; then echo "$fg_pid"; else echo "$vs_pid"; fi; }
down() { curl -sS -o /dev/null "$(url "$1" big.bin)"; }
up() { curl -sS -T "$work/upload.bin" "$(url "$1" "up-$1.bin")"; }
tls_down() { curl -sS -k --ssl-reqd -o /dev/null "$(url "$1" big.bin)"; }
tls_up() { curl -sS -k --ssl-reqd -T "$work/upload.bin" "$(url "$1" "up-tls-$1.bin")"; }
declare -A R

pss_kb() {
    local list p
    if [ "$1" = filegate ]; then list="$fg_pid"; else list="$(pgrep -x vsftpd || true)"; fi
    for p in $list; do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true; done | awk '{s+=$1} END {print s+0}'
}
idle() { # server -> MiB added by $IDLE idle sessions
    local server=$1 port user pw before after
    if [ "$server" = filegate ]; then port=$fg_port; user=bench; else port=$vs_port; user=fgbench; fi
    before=$(pss_kb "$server")
    python3 - "$port" "$user" "$IDLE" "$work/idle.ready" <<'PY' &
import ftplib, sys, time
port, user, n, ready = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
held = []
for _ in range(n):
    f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login(user, "bench-password-1"); held.append(f)
open(ready, "w").close()
time.sleep(6)
PY
    local py=$!
    while [ ! -e "$work/idle.ready" ]; do sleep 0.2; done
    sleep 1.5; after=$(pss_kb "$server"); wait "$py"; rm -f "$work/idle.ready"
    python3 -c "print(f'{($after-$before)/1024:.1f}')"
}
for server in vsftpd filegate; do R["$server idle"]=$(idle "$server"); done

echo "load before the transfers: $(ab_load)" >&2
ab "down MB/s" "$SIZE_MB" down filegate vsftpd
ab "up MB/s" "$SIZE_MB" up filegate vsftpd
cmp "$work/upload.bin" "$store/bench/up-filegate.bin" || { echo "filegate upload differs"; exit 1; }
ab "FTPS down MB/s" "$SIZE_MB" tls_down filegate vsftpd
ab "FTPS up MB/s" "$SIZE_MB" tls_up filegate vsftpd
cmp "$work/upload.bin" "$store/bench/up-tls-filegate.bin" || { echo "filegate FTPS upload differs"; exit 1; }

logins() { # server user password parallel -> logins/s
    python3 - "$1" "$2" "$3" "$4" "$LOGINS" <<'PY'
import ftplib, sys, time, threading
port, user, pw, par, total = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def run(n):
    for _ in range(n):
        f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login(user, pw); f.quit()
t0 = time.time()
threads = [threading.Thread(target=run, args=(total // par,)) for _ in range(par)]
[t.start() for t in threads]; [t.join() for t in threads]
print(f"{(total // par) * par / (time.time() - t0):.0f}")
PY
}
seq_logins() { if [ "$1" = filegate ]; then logins "$fg_port" "@api-bench-key" "$key" 1; else logins "$vs_port" fgbench bench-password-1 1; fi; }
par_logins() { if [ "$1" = filegate ]; then logins "$fg_port" "@api-bench-key" "$key" 20; else logins "$vs_port" fgbench bench-password-1 20; fi; }
one "logins/s seq, API key" "/s" seq_logins filegate vsftpd
one "logins/s 20 parallel" "/s" par_logins filegate vsftpd
R["filegate pw logins seq"]=$(logins "$fg_port" bench bench-password-1 1)

ab_table "FTP benchmark: ${SIZE_MB} MiB file, curl and ftplib on 127.0.0.1 (filegate: sendfile on plain data connections)" filegate vsftpd
printf '%-44s %10s\n' "logins/s (seq; filegate: user password)" "${R["filegate pw logins seq"]}"
f=${R["filegate idle"]}; o=${R["vsftpd idle"]}
printf '%-44s %10s %10s %8s\n' "MiB for $IDLE idle sessions (PSS added)" "$f" "$o" "$(ab_ratio "$f" "$o")"
