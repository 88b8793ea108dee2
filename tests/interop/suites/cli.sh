#!/usr/bin/env bash
# The CLI against the running server's store: key management while serving, and the
# audit trail it leaves. (Protocol suites sit beside this one.)
set -euo pipefail
fail() { echo "cli suite: $*"; exit 1; }

keys="$("$FILEGATE_BIN" key list --json)"
[ "$(jq length <<<"$keys")" -ge 1 ] || fail "key list is empty"
grep -q "$ALICE_KEY_SECRET" <<<"$keys" && fail "key list shows a secret"

tmp="$("$FILEGATE_BIN" key create --user alice --name "short lived" --expires-at 2099-01-01 --json)"
id="$(jq -r .id <<<"$tmp")"
"$FILEGATE_BIN" key revoke "$id" >/dev/null
"$FILEGATE_BIN" key revoke "$id" 2>/dev/null && fail "revoking twice succeeded"

audit="$("$FILEGATE_BIN" audit tail -n 100000 --json)"
jq -e --arg id "$id" 'map(select(.action == "api_key_delete" and .path == ("api_key:" + $id))) | length == 1' <<<"$audit" >/dev/null || fail "revocation not audited"
jq -e 'map(select(.action == "user_create" and .path == "alice")) | length == 1' <<<"$audit" >/dev/null || fail "user creation not audited"
echo "cli suite: key lifecycle and audit trail ok"
