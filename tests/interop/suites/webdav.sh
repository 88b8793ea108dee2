#!/usr/bin/env bash
# WebDAV with real clients: the litmus suite (every section, 0 failures) signed in with an
# API key, curl uploads/downloads, and an rclone sync of a nested tree both ways.
set -euo pipefail
fail() { echo "webdav suite: $*"; exit 1; }
[ -n "$WEBDAV_ADDR" ] || fail "webdav is not running"
base="http://$WEBDAV_ADDR"
dir="$WORK/webdav-suite"; mkdir -p "$dir"; cd "$dir"

# 1. litmus, all sections, with the API key (login @api-<name>).
# The folder is made through the product (MKCOL), as a user would.
curl -sS -f -X MKCOL -u "alice:$ALICE_PASSWORD" "$base/alice/litmus/" || fail "MKCOL litmus folder"
litmus "$base/alice/litmus/" "@api-interop key" "$ALICE_KEY_SECRET" > litmus.log 2>&1 || { tail -40 litmus.log; fail "litmus failed"; }
grep "^<- summary" litmus.log
for section in basic copymove props locks http; do
    grep -q "summary for \`$section': of [0-9]* tests run: [0-9]* passed, 0 failed" litmus.log || fail "litmus section $section not clean"
done

# 2. curl: PUT and GET, byte for byte; wrong password refused.
head -c 4000000 /dev/urandom > one.bin
curl -sS -f -u "alice:$ALICE_PASSWORD" -T one.bin "$base/alice/curl.bin" || fail "curl PUT"
curl -sS -f -u "@api-$ALICE_KEY_ID:$ALICE_KEY_SECRET" -o curl.down "$base/alice/curl.bin" || fail "curl GET with a key"
cmp one.bin curl.down || fail "curl round trip differs"
code="$(curl -s -o /dev/null -w '%{http_code}' -u "alice:wrong-password" "$base/alice/curl.bin")"
[ "$code" = 401 ] || fail "wrong password gave $code"
code="$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$ALICE_PASSWORD" "$base/alice/%2e%2e/%2e%2e/etc/passwd")"
case "$code" in 400|403|404) ;; *) fail "encoded .. gave $code";; esac

# 3. rclone: sync a nested tree up and back down.
mkdir -p tree/a/b/c tree/x
head -c 3000000 /dev/urandom > tree/a/b/c/deep.bin
for i in 1 2 3; do echo "file $i" > "tree/x/f$i.txt"; head -c $((RANDOM * 3)) /dev/urandom > "tree/a/r$i.dat"; done
export RCLONE_CONFIG_FG_TYPE=webdav RCLONE_CONFIG_FG_URL="$base" RCLONE_CONFIG_FG_VENDOR=other
export RCLONE_CONFIG_FG_USER="@api-interop key" RCLONE_CONFIG_FG_PASS="$(rclone obscure "$ALICE_KEY_SECRET")"
rclone sync tree fg:alice/rtree > rclone-up.log 2>&1 || { cat rclone-up.log; fail "rclone sync up"; }
if [ "${STORAGE:-local}" = s3 ]; then
    # What landed in the bucket, read straight from S3 (byte for byte: --download).
    export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENDPOINT="$S3_ENDPOINT"
    export RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=interop RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=interop-secret
    export RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE=true RCLONE_CONFIG_MOTO_REGION=us-east-1
    env -u AWS_CA_BUNDLE rclone check --download tree "moto:$S3_BUCKET/$S3_PREFIX/alice/rtree" > rclone-check.log 2>&1 \
        || { cat rclone-check.log; fail "rclone upload differs in the bucket"; }
else
    diff -r tree "$FILEGATE_DATA_DIR/files/alice/rtree" || fail "rclone upload differs"
fi
rclone sync fg:alice/rtree back > rclone-down.log 2>&1 || { cat rclone-down.log; fail "rclone sync down"; }
diff -r tree back || fail "rclone download differs"
echo "webdav suite (storage ${STORAGE:-local}): litmus (all sections clean), curl and rclone ok"
