#!/usr/bin/env bash
# SFTP with real clients: OpenSSH sftp (batch mode, password via sshpass), scp (which
# speaks SFTP), and Python paramiko; results compared byte for byte.
set -euo pipefail
fail() { echo "sftp suite: $*"; exit 1; }
[ -n "$SFTP_ADDR" ] || fail "sftp is not running"
host="${SFTP_ADDR%:*}"; port="${SFTP_ADDR##*:}"
dir="$WORK/sftp-suite"; mkdir -p "$dir"; cd "$dir"
ssh_opts=(-oBatchMode=no -oStrictHostKeyChecking=no -oUserKnownHostsFile=/dev/null -oLogLevel=ERROR -oPubkeyAuthentication=no)

head -c 5000000 /dev/urandom > big.bin
printf 'hello from openssh\n' > small.txt

# 1. OpenSSH sftp as alice with her password.
cat > batch <<'B'
pwd
put big.bin
put small.txt
mkdir nested
put small.txt nested/copy.txt
rename small.txt nested/renamed.txt
ls -l nested
get big.bin big.down
get nested/copy.txt copy.down
rm nested/copy.txt
B
SSHPASS="$ALICE_PASSWORD" sshpass -e sftp "${ssh_opts[@]}" -P "$port" -b batch "alice@$host" > sftp.out 2>&1 || { cat sftp.out; fail "openssh sftp batch failed"; }
grep -q "Remote working directory: /alice" sftp.out || { cat sftp.out; fail "pwd is not the user's folder"; }
cmp big.bin big.down || fail "download differs from upload"
cmp small.txt copy.down || fail "nested copy differs"
cmp big.bin "$FILEGATE_DATA_DIR/files/alice/big.bin" || fail "stored file differs"
[ -f "$FILEGATE_DATA_DIR/files/alice/nested/renamed.txt" ] || fail "rename did not land"

# 1b. What OpenSSH clients expect (issue 18): chmod answered (and changing nothing), df
# through statvfs@openssh.com, cp through copy-data, links refused, ls -l with link count 1
# and the principal's name, resumed put/get.
head -c 1000000 big.bin > partial.bin
head -c 2000000 big.bin > resume.down
SSHPASS="$ALICE_PASSWORD" sshpass -e sftp "${ssh_opts[@]}" -P "$port" -b - "alice@$host" > prep.out 2>&1 <<'B' || { cat prep.out; fail "preparing resume failed"; }
put partial.bin resume.bin
B
cat > batch2 <<'B'
chmod 0600 big.bin
df .
cp big.bin big.copy
-ln big.bin big.hard
-ln -s big.bin big.sym
put -a big.bin resume.bin
get -a big.bin resume.down
ls -l
B
SSHPASS="$ALICE_PASSWORD" sshpass -e sftp "${ssh_opts[@]}" -P "$port" -b batch2 "alice@$host" > sftp2.out 2>&1 || { cat sftp2.out; fail "openssh conformance batch failed"; }
grep -q "Avail" sftp2.out || { cat sftp2.out; fail "df did not print the storage's space"; }
cmp big.bin "$FILEGATE_DATA_DIR/files/alice/big.copy" || fail "server-side cp differs"
cmp big.bin "$FILEGATE_DATA_DIR/files/alice/resume.bin" || fail "put -a did not resume"
cmp big.bin resume.down || fail "get -a did not resume"
[ ! -e "$FILEGATE_DATA_DIR/files/alice/big.hard" ] && [ ! -e "$FILEGATE_DATA_DIR/files/alice/big.sym" ] || fail "a link was made"
grep -Eq '^-rw-rw-rw- +[0-9?]+ alice +filegate .* big\.copy$' sftp2.out || { cat sftp2.out; fail "ls -l does not show the principal's rights and names"; }

# 2. A refused command in batch mode makes sftp fail (no hang, a clear error).
printf 'get /etc/passwd pw\n' > bad
if SSHPASS="$ALICE_PASSWORD" sshpass -e sftp "${ssh_opts[@]}" -P "$port" -b bad "alice@$host" > bad.out 2>&1; then
    fail "reading outside the grant succeeded"
fi
[ ! -e pw ] || fail "a file outside the grant was downloaded"

# 3. Wrong password: refused.
if SSHPASS="wrong-password" sshpass -e sftp "${ssh_opts[@]}" -P "$port" -b batch "alice@$host" > wrong.out 2>&1; then
    fail "wrong password accepted"
fi

# 4. scp (SFTP protocol) with the API key: login @api-<id>, the secret as password.
SSHPASS="$ALICE_KEY_SECRET" sshpass -e scp "${ssh_opts[@]}" -P "$port" big.bin "@api-$ALICE_KEY_ID@$host:/alice/scp.bin" > scp.out 2>&1 || { cat scp.out; fail "scp upload failed"; }
SSHPASS="$ALICE_KEY_SECRET" sshpass -e scp "${ssh_opts[@]}" -P "$port" "@api-$ALICE_KEY_ID@$host:/alice/scp.bin" scp.down > scp2.out 2>&1 || { cat scp2.out; fail "scp download failed"; }
cmp big.bin scp.down || fail "scp round trip differs"

# 5. An interactive shell is refused with a message, not a hang.
if SSHPASS="$ALICE_PASSWORD" timeout 20 sshpass -e ssh "${ssh_opts[@]}" -p "$port" "alice@$host" id > ssh.out 2>&1; then
    fail "a command ran"
fi
grep -q "SFTP only" ssh.out || { cat ssh.out; fail "no clear refusal for commands"; }

# 6. paramiko, by key name.
python3 - "$host" "$port" <<'PY'
import hashlib, os, sys, paramiko
host, port = sys.argv[1], int(sys.argv[2])
t = paramiko.Transport((host, port))
t.connect(username="@api-interop key", password=os.environ["ALICE_KEY_SECRET"])
sftp = paramiko.SFTPClient.from_transport(t)
assert sftp.normalize(".") == "/alice", sftp.normalize(".")
data = os.urandom(3 * 1024 * 1024 + 17)
with sftp.open("/alice/paramiko.bin", "wb") as f:
    f.set_pipelined(True)
    f.write(data)
with sftp.open("/alice/paramiko.bin", "rb") as f:
    f.prefetch()
    back = f.read()
assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest(), "paramiko round trip differs"
st = sftp.stat("/alice/paramiko.bin")
assert st.st_size == len(data)
assert sorted(sftp.listdir("/alice")).count("paramiko.bin") == 1
sftp.mkdir("/alice/pdir")
sftp.rename("/alice/paramiko.bin", "/alice/pdir/p.bin")
sftp.posix_rename("/alice/pdir/p.bin", "/alice/pdir/q.bin")
sftp.remove("/alice/pdir/q.bin")
sftp.rmdir("/alice/pdir")
try:
    sftp.open("/etc/passwd", "rb")
    raise SystemExit("read outside the grant succeeded")
except IOError:
    pass
t.close()
try:
    t = paramiko.Transport((host, port))
    t.connect(username="@api-interop key", password="0" * 64)
    raise SystemExit("wrong key secret accepted")
except paramiko.AuthenticationException:
    pass
print("paramiko ok")
PY

"$FILEGATE_BIN" audit tail -n 500 --json > audit.json
jq -e --arg id "$ALICE_KEY_ID" 'map(select(.interface == "sftp" and .action == "create" and (.key_id|tostring) == $id and .username == "alice")) | length >= 2' audit.json >/dev/null \
    || fail "key uploads not audited as alice"
echo "sftp suite: openssh sftp, scp, ssh refusal and paramiko ok"
