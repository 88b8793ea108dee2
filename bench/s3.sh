#!/usr/bin/env bash
# S3 benchmark: filegate serving an S3 bucket (moto_server on 127.0.0.1) over SFTP, FTP and
# WebDAV, beside `rclone copy` straight to the same moto endpoint, in the same run and with
# the same client (rclone, for every protocol), alternately (bench/lib.sh). Prints medians,
# min–max, ratios (filegate/direct: the issue's target is >= 0.9) of MB/s up and down, and
# the peak resident memory of filegate during 8 parallel SFTP uploads (target < 256 MiB).
#
# The "direct" column's CPU figure is moto's (the S3 server); filegate's is filegate's alone
# (moto's share of its transfers is not in it).
#
# usage: bench/s3.sh [path/to/filegate]   (needs moto_server: pip install 'moto[server]==5.2.1',
#        and rclone; SIZE_MB=1024 PARALLEL=8 RUNS=5 may be overridden; run on demand, not in CI)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${SIZE_MB:-1024}"; PARALLEL="${PARALLEL:-8}"
command -v moto_server >/dev/null || { echo "bench/s3.sh needs moto_server (pip install 'moto[server]==5.2.1')"; exit 2; }
command -v rclone >/dev/null || { echo "bench/s3.sh needs rclone"; exit 2; }

work="$(mktemp -d /tmp/filegate-bench-s3.XXXXXX)"
pids=()
cleanup() { [ -n "${KEEP:-}" ] && tail -5 "$work/fg.log"; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; ab_untrack; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# moto: one server, one bucket; filegate under files/, rclone's direct copies under direct/.
moto_port="$(free_port)"; endpoint="http://127.0.0.1:$moto_port"; bucket="bench"
setpriv --pdeathsig KILL moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 & moto_pid=$!; pids+=($moto_pid)
for _ in $(seq 1 100); do curl -s -o /dev/null "$endpoint/" && break; sleep 0.2; done
curl -sS -f -o /dev/null -X PUT "$endpoint/$bucket"

sftp_port="$(free_port)"; ftp_port="$(free_port)"; dav_port="$(free_port)"
cat > "$work/filegate.toml" <<CFG
[server]
data_dir = "$work/fg"
[auth.lockout]
enabled = false
[sftp]
listen = "127.0.0.1:$sftp_port"
max_sessions_per_login = 1000
[ftp]
listen = "127.0.0.1:$ftp_port"
[webdav]
listen = "127.0.0.1:$dav_port"
[api]
listen = "127.0.0.1:$(free_port)"
[limits]
max_connections_per_address = 1000
[storage]
url = "s3://$bucket/files"
[storage.s3]
endpoint = "$endpoint"
region = "us-east-1"
access_key_id = "bench"
secret_access_key = "bench-secret"
path_style = true
CFG
fg() { "$bin" --config "$work/filegate.toml" "$@"; }
fg user add bench --password-stdin <<<"bench-password-1" >/dev/null
fg user grant bench / full >/dev/null
"$bin" --config "$work/filegate.toml" serve >"$work/fg.out" 2>"$work/fg.log" & fg_pid=$!; pids+=($fg_pid)
for _ in $(seq 1 100); do grep -q "webdav listening on" "$work/fg.log" && break; sleep 0.1; done
grep -q "webdav listening on" "$work/fg.log" || { cat "$work/fg.log"; echo "filegate did not start"; exit 1; }

# rclone remotes: the three front-ends of filegate, and moto itself.
pass="$(rclone obscure bench-password-1)"
export RCLONE_CONFIG_FGSFTP_TYPE=sftp RCLONE_CONFIG_FGSFTP_HOST=127.0.0.1 RCLONE_CONFIG_FGSFTP_PORT="$sftp_port"
export RCLONE_CONFIG_FGSFTP_USER=bench RCLONE_CONFIG_FGSFTP_PASS="$pass" RCLONE_CONFIG_FGSFTP_SHELL_TYPE=none
# S3 storage cannot set times: rclone's SETSTAT after each upload would be refused (unless the
# file layer answers it OK without a change, see w-mounts), so it does not send it.
export RCLONE_CONFIG_FGSFTP_SET_MODTIME=false
export RCLONE_CONFIG_FGFTP_TYPE=ftp RCLONE_CONFIG_FGFTP_HOST=127.0.0.1 RCLONE_CONFIG_FGFTP_PORT="$ftp_port"
export RCLONE_CONFIG_FGFTP_USER=bench RCLONE_CONFIG_FGFTP_PASS="$pass"
export RCLONE_CONFIG_FGDAV_TYPE=webdav RCLONE_CONFIG_FGDAV_URL="http://127.0.0.1:$dav_port" RCLONE_CONFIG_FGDAV_VENDOR=other
export RCLONE_CONFIG_FGDAV_USER=bench RCLONE_CONFIG_FGDAV_PASS="$pass"
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENDPOINT="$endpoint"
export RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=bench RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=bench-secret
export RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE=true RCLONE_CONFIG_MOTO_REGION=us-east-1
# rclone 1.60 checks a multipart upload with `HEAD key?versionId=null`, which moto 5.2
# answers 400: no check (the bytes are compared after each download anyway).
export RCLONE_CONFIG_MOTO_NO_HEAD=true
# -I: always transfer (never skip a file that looks the same).
rc=(env -u AWS_CA_BUNDLE rclone --config /dev/null -q -I)   # a CA bundle in the environment breaks rclone's S3 client

head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$work/big.bin"
server_pid() { if [ "$1" = filegate ]; then echo "$fg_pid"; else echo "$moto_pid"; fi; }
remote() { # server protocol -> rclone path of the benchmark folder
    if [ "$1" = filegate ]; then echo "fg$2:bench"; else echo "moto:$bucket/direct"; fi
}
up() { "${rc[@]}" copyto "$work/big.bin" "$(remote "$1" "$2")/up.bin"; }
# rclone 1.60 (Debian's) fails its multi-thread FTP downloads (files over 250 MiB) against
# any server: it closes each stream's data connection early and takes the server's 426 as an
# error (vsftpd: "426 Failure writing network stream.", same failure). FTP downloads are
# therefore one stream; SFTP, WebDAV and the direct S3 client keep rclone's defaults.
down() {
    local single=(); [ "$2" = ftp ] && single=(--multi-thread-streams 0)
    rm -f "$work/down.bin"; "${rc[@]}" "${single[@]}" copyto "$(remote "$1" "$2")/up.bin" "$work/down.bin"
}

for proto in sftp ftp dav; do
    eval "run_up_$proto() { up \"\$1\" $proto; }"
    eval "run_down_$proto() { down \"\$1\" $proto; }"
    ab "up MB/s $proto" "$SIZE_MB" "run_up_$proto" filegate direct
    ab "down MB/s $proto" "$SIZE_MB" "run_down_$proto" filegate direct
    cmp "$work/big.bin" "$work/down.bin" || { echo "$proto: the file came back different"; exit 1; }
done

# Peak RSS of filegate with PARALLEL uploads at once over SFTP: the peak is reset first
# (clear_refs 5, root only; otherwise it is the peak of the whole run so far).
echo 5 > "/proc/$fg_pid/clear_refs" 2>/dev/null || echo "(cannot reset the peak RSS: the figure covers the whole run)" >&2
t0="$(ab_now)"
uploads=()
for i in $(seq 1 "$PARALLEL"); do "${rc[@]}" copyto "$work/big.bin" "fgsftp:bench/par-$i.bin" & uploads+=($!); done
failed=0; for p in "${uploads[@]}"; do wait "$p" || failed=1; done
t1="$(ab_now)"
[ "$failed" = 0 ] || { echo "a parallel upload failed"; exit 1; }
peak_kb="$(awk '/^VmHWM:/{print $2}' "/proc/$fg_pid/status")"
moto_kb="$(awk '/^VmRSS:/{print $2}' "/proc/$moto_pid/status")"

ab_table "S3 benchmark: ${SIZE_MB} MiB file, rclone for every protocol, filegate on moto vs rclone direct to moto, 127.0.0.1" filegate direct
echo
printf '%s parallel SFTP uploads of %s MiB: %.0f MB/s together; filegate peak RSS %s MiB (target < 256); moto RSS %s MiB\n' \
    "$PARALLEL" "$SIZE_MB" "$(python3 -c "print($PARALLEL*$SIZE_MB/($t1-$t0))")" "$((peak_kb / 1024))" "$((moto_kb / 1024))"
