#!/usr/bin/env bash
# The interop runner: starts one filegate (release build, fresh data folder, every listener
# on 127.0.0.1 with a free port), creates the accounts the suites use, then runs every
# suite script in tests/interop/suites/ against it. Each suite gets the environment below
# and exits non-zero on failure. The server is stopped at the end, whatever happens.
#
# With INTEROP_STORAGE=s3 the gateway serves an S3 bucket instead of a local folder: the
# runner starts moto_server (pip: moto[server], tests/interop/requirements.txt) on a free
# port, makes a bucket, and runs the suites named in INTEROP_SUITES (default there: webdav,
# i.e. litmus, curl and rclone, and api; the sftp and ftp suites check the local disk and
# use append/resume, which S3 storage answers "not supported"). Suites see STORAGE=s3 and
# S3_ENDPOINT, S3_BUCKET, S3_PREFIX to check what landed in the bucket.
#
# usage: [INTEROP_STORAGE=s3] [INTEROP_SUITES="webdav api"] tests/interop/run.sh [path/to/filegate]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-target/release/filegate}")"
[ -x "$bin" ] || { echo "interop: no filegate binary at $bin (cargo build --release)"; exit 2; }
storage="${INTEROP_STORAGE:-local}"
case "$storage" in
    local) suites="${INTEROP_SUITES:-}" ;;
    s3) suites="${INTEROP_SUITES:-webdav api}" ;;
    *) echo "interop: INTEROP_STORAGE=$storage: expected local or s3"; exit 2 ;;
esac

work="$(mktemp -d /tmp/filegate-interop.XXXXXX)"
server_pid=""
moto_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

export STORAGE="$storage"
if [ "$storage" = s3 ]; then
    command -v moto_server >/dev/null || { echo "interop: INTEROP_STORAGE=s3 needs moto_server (pip install -r tests/interop/requirements.txt)"; exit 2; }
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    # --pdeathsig: moto goes with this script, even if the script is killed.
    setpriv --pdeathsig KILL moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
    moto_pid=$!
    export S3_ENDPOINT="http://127.0.0.1:$port" S3_BUCKET="interop-$$" S3_PREFIX="files"
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$S3_ENDPOINT/" && break
        kill -0 "$moto_pid" 2>/dev/null || { cat "$work/moto.log"; echo "interop: moto_server exited"; exit 1; }
        sleep 0.2
    done
    curl -sS -f -o /dev/null -X PUT "$S3_ENDPOINT/$S3_BUCKET" || { echo "interop: cannot create the bucket"; exit 1; }
    # Every filegate command of the run (the suites' too, through FILEGATE_BIN) reads this
    # config: the bucket, path-style addressing (moto on an IP address).
    cat >"$work/filegate.toml" <<CFG
[storage]
url = "s3://$S3_BUCKET/$S3_PREFIX"

[storage.s3]
endpoint = "$S3_ENDPOINT"
region = "us-east-1"
access_key_id = "interop"
secret_access_key = "interop-secret"
path_style = true
# litmus moves folders that hold files: allowed here (each object copied, then deleted).
rename_folders = true
CFG
    printf '#!/bin/sh\nexec "%s" --config "%s" "$@"\n' "$bin" "$work/filegate.toml" >"$work/filegate"
    chmod +x "$work/filegate"
    bin="$work/filegate"
    echo "interop: storage s3://$S3_BUCKET/$S3_PREFIX on moto_server at $S3_ENDPOINT"
fi

export FILEGATE_DATA_DIR="$work/data"
export FILEGATE_SFTP_LISTEN=127.0.0.1:0 FILEGATE_FTP_LISTEN=127.0.0.1:0
export FILEGATE_WEBDAV_LISTEN=127.0.0.1:0 FILEGATE_API_LISTEN=127.0.0.1:0
unset FILEGATE_DATABASE_URL
cd "$work"

# Accounts shared by the suites.
export ALICE_PASSWORD="alice-interop-password"
printf '%s\n' "$ALICE_PASSWORD" | "$bin" user add alice --password-stdin >/dev/null
"$bin" user grant alice /alice full >/dev/null
ALICE_KEY_JSON="$("$bin" key create --user alice --name "interop key" --json)"
export ALICE_KEY_ID="$(jq -r .id <<<"$ALICE_KEY_JSON")"
export ALICE_KEY_SECRET="$(jq -r .key <<<"$ALICE_KEY_JSON")"
export ALICE_ID="$("$bin" user list --json | jq -r '.[] | select(.username == "alice") | .id')"
printf 'interop-admin-password\n' | "$bin" user add interop-admin --admin --password-stdin >/dev/null
export ADMIN_KEY_SECRET="$("$bin" key create --user interop-admin --name "interop admin key" --json | jq -r .key)"

"$bin" serve >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
# Wait until every enabled front-end has logged its address (or the server died).
for _ in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "interop: server exited"; exit 1; }
    grep -q "filegate starting" "$work/server.log" && break
    sleep 0.1
done
sleep 0.5
addr() { sed -n "s/.*: $1 listening on \([0-9.:]*\).*/\1/p" "$work/server.log" | head -1; }
export FILEGATE_BIN="$bin" WORK="$work"
export SFTP_ADDR="$(addr sftp)" FTP_ADDR="$(addr ftp)" WEBDAV_ADDR="$(addr webdav)" API_ADDR="$(addr api)"

passed=0; failed=0
for suite in "$here"/suites/*.sh; do
    name="$(basename "$suite" .sh)"
    if [ -n "$suites" ] && ! grep -qw -- "$name" <<<"$suites"; then
        echo "--- interop suite: $name skipped (storage $storage; INTEROP_SUITES=\"$suites\")"
        continue
    fi
    echo "--- interop suite: $name"
    if bash "$suite"; then
        echo "--- $name: ok"; passed=$((passed + 1))
    else
        echo "--- $name: FAILED"; failed=$((failed + 1))
        echo "server log (last 40 lines):"; tail -40 "$work/server.log"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
