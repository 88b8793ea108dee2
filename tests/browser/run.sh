#!/usr/bin/env bash
# The browser suite's runner: starts one real `filegate serve` (fresh data folder in a temp
# dir, every listener on 127.0.0.1 with a free port), makes the site admin the tests sign in
# with (CLI, password on stdin) plus an admin API key used only to set up fixtures over REST,
# then runs the playwright-core tests (*.test.mjs, Node's built-in runner, one file at a time)
# against it with Debian's /usr/bin/chromium. The server is stopped at the end, whatever
# happens. Screenshots and the page-weight table land in tests/browser/artifacts/.
#
# usage: tests/browser/run.sh [path/to/filegate] [test files...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-target/release/filegate}")"
shift || true
[ -x "$bin" ] || { echo "browser: no filegate binary at $bin (cargo build --release)"; exit 2; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "browser: no chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"; exit 2; }
[ -d "$here/node_modules/playwright-core" ] || { echo "browser: run 'npm ci' in $here first"; exit 2; }
for tool in sftp sshpass curl jq; do
    command -v "$tool" >/dev/null || { echo "browser: $tool is missing (tests/interop/apt-packages.txt)"; exit 2; }
done

work="$(mktemp -d /tmp/filegate-browser.XXXXXX)"
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

export ADMIN_USER="browser-admin" ADMIN_PASSWORD="browser-admin-password-1"
printf '%s\n' "$ADMIN_PASSWORD" | "$bin" user add "$ADMIN_USER" --admin --password-stdin >/dev/null
# Fixture key: the tests set up the non-admin users they need over the REST API with it, so
# that each flow's own steps (not the setup) go through the console.
export ADMIN_KEY_SECRET="$("$bin" key create --user "$ADMIN_USER" --name "browser fixtures" --json | jq -r .key)"

"$bin" serve >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "browser: server exited"; exit 1; }
    grep -q "filegate starting" "$work/server.log" && break
    sleep 0.1
done
addr() { sed -n "s/.*: $1 listening on \([0-9.:]*\).*/\1/p" "$work/server.log" | head -1; }
for _ in $(seq 1 50); do
    [ -n "$(addr api)" ] && [ -n "$(addr sftp)" ] && [ -n "$(addr webdav)" ] && break
    sleep 0.1
done
export FILEGATE_BIN="$bin" WORK="$work" SERVER_LOG="$work/server.log"
export SFTP_ADDR="$(addr sftp)" WEBDAV_ADDR="$(addr webdav)" API_ADDR="$(addr api)"
[ -n "$API_ADDR" ] || { cat "$work/server.log"; echo "browser: the api listener did not start"; exit 1; }
export BROWSER_PLAIN_NAMES=1
export ARTIFACTS="${ARTIFACTS:-$here/artifacts}"
rm -rf "$ARTIFACTS"; mkdir -p "$ARTIFACTS/screenshots"
echo "browser: filegate at http://$API_ADDR (sftp $SFTP_ADDR, webdav $WEBDAV_ADDR), artifacts in $ARTIFACTS"

cd "$here"
if [ "$#" -gt 0 ]; then files=("$@"); else files=(*.test.mjs); export BROWSER_FULL_RUN=1; fi
status=0
# One file at a time, in name order: the files share one server, and the last one
# (99-weights) prints the page-weight table of every page the others visited.
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}" || status=$?
if [ "$status" -ne 0 ]; then
    echo "server log (last 60 lines):"; tail -60 "$work/server.log"
fi
exit "$status"
