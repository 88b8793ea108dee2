#!/usr/bin/env bash
# FTP/FTPS with real clients: curl (ftp:// and --ssl-reqd), lftp (mirror -R and mirror of a
# nested tree holding a 100 MiB file) and Python ftplib (FTP and FTP_TLS); byte-for-byte. Then
# a few hundred ftplib FTP_TLS logins in a row (issue 15).
set -euo pipefail
fail() { echo "ftp suite: $*"; exit 1; }
[ -n "$FTP_ADDR" ] || fail "ftp is not running"
host="${FTP_ADDR%:*}"; port="${FTP_ADDR##*:}"
dir="$WORK/ftp-suite"; mkdir -p "$dir"; cd "$dir"
store="$FILEGATE_DATA_DIR/files"

head -c 3000000 /dev/urandom > one.bin

# 1. curl, plain and with TLS required (self-signed certificate: -k).
curl -sS -T one.bin "ftp://alice:$ALICE_PASSWORD@$host:$port/curl.bin" || fail "curl upload"
curl -sS -o curl.down "ftp://alice:$ALICE_PASSWORD@$host:$port/curl.bin" || fail "curl download"
cmp one.bin curl.down || fail "curl round trip differs"
curl -sS --ssl-reqd -k -T one.bin "ftp://alice:$ALICE_PASSWORD@$host:$port/curl-tls.bin" || fail "curl FTPS upload"
curl -sS --ssl-reqd -k -o curl-tls.down "ftp://alice:$ALICE_PASSWORD@$host:$port/curl-tls.bin" || fail "curl FTPS download"
cmp one.bin curl-tls.down || fail "curl FTPS round trip differs"
curl -sS -u "@api-$ALICE_KEY_ID:$ALICE_KEY_SECRET" -o key.down "ftp://$host:$port/curl.bin" || fail "curl with an API key"
cmp one.bin key.down || fail "API-key download differs"
if curl -sS -o /dev/null "ftp://alice:wrong-password@$host:$port/curl.bin" 2>/dev/null; then fail "wrong password accepted"; fi
if curl -sS -o /dev/null "ftp://alice:$ALICE_PASSWORD@$host:$port/%2Fetc/passwd" 2>/dev/null; then fail "read outside the grant"; fi

# 2. lftp: mirror a nested tree up (plain FTP) and back down (FTPS).
mkdir -p tree/a/b/c tree/empty tree/x
head -c $((100 * 1024 * 1024)) /dev/urandom > tree/a/b/c/hundred.bin
for i in 1 2 3; do head -c $((RANDOM * 7)) /dev/urandom > "tree/a/f$i.dat"; echo "note $i" > "tree/x/n$i.txt"; done
lftp -u "alice,$ALICE_PASSWORD" -p "$port" -e "set ftp:ssl-allow no; set net:max-retries 1; mirror -R tree /alice/tree; quit" "$host" >lftp-up.log 2>&1 || { cat lftp-up.log; fail "lftp mirror -R"; }
diff -r tree "$store/alice/tree" || fail "uploaded tree differs"
lftp -u "alice,$ALICE_PASSWORD" -p "$port" -e "set ftp:ssl-force yes; set ssl:verify-certificate no; set net:max-retries 1; mirror /alice/tree back; quit" "$host" >lftp-down.log 2>&1 || { cat lftp-down.log; fail "lftp mirror over FTPS"; }
diff -r tree back || fail "downloaded tree differs"

# 3. Python ftplib, plain and FTP_TLS.
python3 - "$host" "$port" <<'PY'
import ftplib, hashlib, io, os, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
data = os.urandom(2_500_000)

def roundtrip(ftp, name):
    ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", out.write)
    assert out.getvalue() == data, "ftplib round trip differs"
    assert ftp.size(name) == len(data)
    assert name.rsplit("/", 1)[-1] in ftp.nlst("/alice")

ftp = ftplib.FTP()
ftp.connect(host, port)
ftp.login("alice", os.environ["ALICE_PASSWORD"])
ftp.cwd("/alice")
assert ftp.pwd() == "/alice"
roundtrip(ftp, "/alice/ftplib.bin")
ftp.mkd("pydir")
ftp.rename("ftplib.bin", "pydir/moved.bin")
entries = dict(ftp.mlsd("pydir"))
assert "moved.bin" in entries and entries["moved.bin"]["type"] == "file", entries
ftp.delete("pydir/moved.bin")
ftp.rmd("pydir")
try:
    ftp.retrbinary("RETR /etc/passwd", lambda b: None)
    raise SystemExit("read outside the grant")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
ftp.quit()

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tls = ftplib.FTP_TLS(context=ctx)
tls.connect(host, port)
tls.login("@api-interop key", os.environ["ALICE_KEY_SECRET"])
tls.prot_p()
roundtrip(tls, "/alice/ftplib-tls.bin")
tls.quit()
print("ftplib ok")
PY
# 4. Issue 15: many explicit-TLS logins in a row with ftplib, which sends its ClientHello right
# after 234 (1-4% used to fail with WRONG_VERSION_NUMBER). FTPS_LOGINS overrides the count.
python3 - "$host" "$port" "${FTPS_LOGINS:-300}" <<'PY'
import ftplib, os, ssl, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
failures = []
for i in range(count):
    try:
        ftp = ftplib.FTP_TLS(context=ctx, timeout=10)
        ftp.connect(host, port)
        ftp.auth()
        ftp.login("alice", os.environ["ALICE_PASSWORD"])
        ftp.prot_p()
        ftp.nlst("/alice")
        ftp.quit()
    except Exception as e:
        failures.append(f"#{i}: {type(e).__name__}: {e}")
print(f"ftplib FTP_TLS logins: {count - len(failures)} of {count} succeeded")
if failures:
    print("\n".join(failures[:10]))
    raise SystemExit(f"{len(failures)} FTPS logins failed")
PY
echo "ftp suite: curl, lftp mirror (100 MiB, nested) and ftplib (FTP, FTP_TLS, ${FTPS_LOGINS:-300} TLS logins) ok"
