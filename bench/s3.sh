#!/usr/bin/env bash
# S3 benchmark: filegate serving an S3 bucket over SFTP, FTP and WebDAV, beside `rclone copy`
# straight to the same S3 endpoint, in the same run and with the same client (rclone, for every
# protocol), alternately (bench/lib.sh). Prints medians, min–max, ratios (filegate/direct: the
# issue's target is >= 0.9) of MB/s up and down, and the peak resident memory of filegate
# during 8 parallel SFTP uploads (target < 256 MiB).
#
# The S3 server (PROVIDER) runs on 127.0.0.1:
# - s3s-fs (default; crates.io, `cargo install s3s-fs --version =0.14.1 --locked --features
#   binary`): objects are files, a ranged GET seeks and reads only its range, as S3 does;
# - moto (`pip install 'moto[server]==5.2.1'`): keeps objects in Python buffers and answers a
#   ranged GET by copying the WHOLE object then slicing it (moto/s3/responses.py,
#   `_handle_range_header`): an 8 MiB range of a 256 MiB object takes ~0.2 s, of a 1 GiB
#   object ~0.8 s. filegate reads in ranged parts (read-ahead) and rclone's direct S3 client in
#   4 large ranges, so on moto the download column measures moto's copies, not the clients.
#
# The "direct" column's CPU figure is the S3 server's; filegate's is filegate's alone (the S3
# server's share of its transfers is not in it).
#
# usage: bench/s3.sh [path/to/filegate]   (needs rclone and the provider's server;
#        PROVIDER=s3s-fs|moto SIZE_MB=1024 PARALLEL=8 RUNS=5 may be overridden, ONLY=rss
#        measures the parallel uploads alone; run on demand,
#        not in CI)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${SIZE_MB:-1024}"; PARALLEL="${PARALLEL:-8}"
PROVIDER="${PROVIDER:-s3s-fs}"
command -v rclone >/dev/null || { echo "bench/s3.sh needs rclone"; exit 2; }
case "$PROVIDER" in
    moto) command -v moto_server >/dev/null || { echo "PROVIDER=moto needs moto_server (pip install 'moto[server]==5.2.1')"; exit 2; } ;;
    s3s-fs) command -v s3s-fs >/dev/null || { echo "PROVIDER=s3s-fs needs s3s-fs (cargo install s3s-fs --version =0.14.1 --locked --features binary)"; exit 2; } ;;
    *) echo "PROVIDER must be s3s-fs or moto"; exit 2 ;;
esac

work="$(mktemp -d /tmp/filegate-bench-s3.XXXXXX)"
pids=()
cleanup() { [ -n "${KEEP:-}" ] && tail -5 "$work/fg.log"; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; ab_untrack; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One S3 server, one bucket; filegate under files/, rclone's direct copies under direct/.
s3_port="$(free_port)"; endpoint="http://127.0.0.1:$s3_port"; bucket="bench"
access_key="bench"; secret_key="bench-secret"
if [ "$PROVIDER" = moto ]; then
    setpriv --pdeathsig KILL moto_server -H 127.0.0.1 -p "$s3_port" >"$work/s3.log" 2>&1 & s3_pid=$!
else
    mkdir -p "$work/s3s/$bucket"   # s3s-fs: a bucket is a folder of its data folder
    setpriv --pdeathsig KILL s3s-fs --host 127.0.0.1 --port "$s3_port" \
        --access-key "$access_key" --secret-key "$secret_key" "$work/s3s" >"$work/s3.log" 2>&1 & s3_pid=$!
fi
pids+=($s3_pid)
for _ in $(seq 1 100); do curl -s -o /dev/null "$endpoint/" && break; sleep 0.2; done
[ "$PROVIDER" = moto ] && curl -sS -f -o /dev/null -X PUT "$endpoint/$bucket"

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
access_key_id = "$access_key"
secret_access_key = "$secret_key"
path_style = true
CFG
fg() { "$bin" --config "$work/filegate.toml" "$@"; }
fg user add bench --password-stdin <<<"bench-password-1" >/dev/null
fg user grant bench / full >/dev/null
"$bin" --config "$work/filegate.toml" serve >"$work/fg.out" 2>"$work/fg.log" & fg_pid=$!; pids+=($fg_pid)
for _ in $(seq 1 100); do grep -q "webdav listening on" "$work/fg.log" && break; sleep 0.1; done
grep -q "webdav listening on" "$work/fg.log" || { cat "$work/fg.log"; echo "filegate did not start"; exit 1; }

# rclone remotes: the three front-ends of filegate, and the S3 server itself.
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
export RCLONE_CONFIG_DIRECT_TYPE=s3 RCLONE_CONFIG_DIRECT_PROVIDER=Other RCLONE_CONFIG_DIRECT_ENDPOINT="$endpoint"
export RCLONE_CONFIG_DIRECT_ACCESS_KEY_ID="$access_key" RCLONE_CONFIG_DIRECT_SECRET_ACCESS_KEY="$secret_key"
export RCLONE_CONFIG_DIRECT_FORCE_PATH_STYLE=true RCLONE_CONFIG_DIRECT_REGION=us-east-1
# rclone 1.60 checks a multipart upload with `HEAD key?versionId=null`, which moto 5.2
# answers 400: no check (the bytes are compared after each download anyway).
export RCLONE_CONFIG_DIRECT_NO_HEAD=true
# -I: always transfer (never skip a file that looks the same).
rc=(env -u AWS_CA_BUNDLE rclone --config /dev/null -q -I)   # a CA bundle in the environment breaks rclone's S3 client

head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$work/big.bin"
server_pid() { if [ "$1" = filegate ]; then echo "$fg_pid"; else echo "$s3_pid"; fi; }
# Files at the top of the user's view (filegate) or under direct/ (rclone straight to S3): no
# folder is made through filegate, since s3s-fs turns a folder marker into a directory whose
# name it then answers HEAD with 500 (see the README's provider table).
remote() { # server protocol -> rclone path of the benchmark file
    if [ "$1" = filegate ]; then echo "fg$2:up.bin"; else echo "direct:$bucket/direct/up.bin"; fi
}
up() { "${rc[@]}" copyto "$work/big.bin" "$(remote "$1" "$2")"; }
# rclone 1.60 (Debian's) fails its multi-thread FTP downloads (files over 250 MiB) against
# any server: it closes each stream's data connection early and takes the server's 426 as an
# error (vsftpd: "426 Failure writing network stream.", same failure). FTP downloads are
# therefore one stream; SFTP, WebDAV and the direct S3 client keep rclone's defaults.
down() {
    local single=(); [ "$2" = ftp ] && single=(--multi-thread-streams 0)
    rm -f "$work/down.bin"; "${rc[@]}" "${single[@]}" copyto "$(remote "$1" "$2")" "$work/down.bin"
}

# ONLY=rss: the parallel-upload memory figure alone.
for proto in $([ "${ONLY:-}" = rss ] || echo sftp ftp dav); do
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
for i in $(seq 1 "$PARALLEL"); do "${rc[@]}" copyto "$work/big.bin" "fgsftp:par-$i.bin" & uploads+=($!); done
failed=0; for p in "${uploads[@]}"; do wait "$p" || failed=1; done
t1="$(ab_now)"
[ "$failed" = 0 ] || { echo "a parallel upload failed"; exit 1; }
peak_kb="$(awk '/^VmHWM:/{print $2}' "/proc/$fg_pid/status")"
s3_kb="$(awk '/^VmRSS:/{print $2}' "/proc/$s3_pid/status")"

[ "${ONLY:-}" = rss ] || ab_table "S3 benchmark: ${SIZE_MB} MiB file, rclone for every protocol, filegate on $PROVIDER vs rclone direct to $PROVIDER, 127.0.0.1" filegate direct
echo
printf '%s parallel SFTP uploads of %s MiB: %.0f MB/s together; filegate peak RSS %s MiB (target < 256); %s RSS %s MiB\n' \
    "$PARALLEL" "$SIZE_MB" "$(python3 -c "print($PARALLEL*$SIZE_MB/($t1-$t0))")" "$((peak_kb / 1024))" "$PROVIDER" "$((s3_kb / 1024))"
