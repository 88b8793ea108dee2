#!/usr/bin/env bash
# The interop runner: starts one filegate (release build, fresh data folder, every listener
# on 127.0.0.1 with a free port), creates the accounts the suites use, then runs every
# suite script in tests/interop/suites/ against it. Each suite gets the environment below
# and exits non-zero on failure. The server is stopped at the end, whatever happens.
#
# usage: tests/interop/run.sh [path/to/filegate]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-target/release/filegate}")"
[ -x "$bin" ] || { echo "interop: no filegate binary at $bin (cargo build --release)"; exit 2; }

work="$(mktemp -d /tmp/filegate-interop.XXXXXX)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

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
