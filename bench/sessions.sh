#!/usr/bin/env bash
# Idle-session benchmark: memory per idle session (PSS added, KiB) and store queries per second
# (PostgreSQL transactions committed in filegate's database, over a 10 s window) at several
# idle-session counts, for SFTP and FTP, beside OpenSSH sshd and vsftpd on 127.0.0.1.
# Targets: < 64 KiB per idle filegate session; store queries flat in the session count.
#
# usage: bench/sessions.sh [path/to/filegate]   (needs root for sshd/vsftpd: installs them and
#        paramiko when missing; LEVELS="100 1000" (add 10000 if the machine holds it),
#        SERVERS="filegate openssh vsftpd", PG=postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
LEVELS="${LEVELS:-100 1000}"
SERVERS="${SERVERS:-filegate openssh vsftpd}"
PG="${PG:-postgres://postgres@127.0.0.1:5432/postgres}"
python3 -c "import paramiko" 2>/dev/null || pip install -q paramiko
command -v psql >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null; }
case " $SERVERS " in *" openssh "*)
    [ -x /usr/sbin/sshd ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; };;
esac
case " $SERVERS " in *" vsftpd "*)
    [ -x /usr/sbin/vsftpd ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vsftpd >/dev/null; };;
esac
max_level=0; for n in $LEVELS; do [ "$n" -gt "$max_level" ] && max_level=$n; done
ulimit -n "$(( max_level * 3 + 1024 ))" 2>/dev/null || true

work="$(mktemp -d /tmp/filegate-sessbench.XXXXXX)"; chmod 755 "$work"
db="fg_sessbench_$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
    psql -q "$PG" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
psql -q "$PG" -c "CREATE DATABASE $db" >/dev/null
db_url="${PG%/*}/$db"

# The client: holds N idle sessions (SFTP: paramiko, password auth; FTP: raw sockets, USER/PASS)
# until killed; touches $ready once all are signed in.
cat > "$work/hold.py" <<'PY'
import socket, sys, time
proto, port, user, password, n, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
held = []
def ftp_session():
    s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
    def reply():
        line = f.readline()
        while line[3:4] == b"-":
            line = f.readline()
        return line
    assert reply().startswith(b"220")
    s.sendall(f"USER {user}\r\n".encode()); assert reply()[:3] in (b"331", b"230")
    s.sendall(f"PASS {password}\r\n".encode()); r = reply(); assert r.startswith(b"230"), r
    return (s, f)
def sftp_session():
    import paramiko
    t = paramiko.Transport(("127.0.0.1", port)); t.connect(username=user, password=password)
    return t
for i in range(n):
    held.append(ftp_session() if proto == "ftp" else sftp_session())
open(ready, "w").close()
while True:
    time.sleep(60)
PY

pss_kb() { # pids... -> PSS (kB) of those processes and their children
    local all=() p
    for p in "$@"; do all+=("$p"); while read -r c; do all+=("$c"); done < <(pgrep -P "$p" || true); done
    for p in "${all[@]}"; do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true; done | awk '{s+=$1} END {print s+0}'
}
commits() { psql -qtA "$PG" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'"; }

# One run: server pids, proto, port, user, password, n -> "KiB/session queries/s"
measure() {
    local pids_of="$1" proto=$2 port=$3 user=$4 password=$5 n=$6 before after c0 c1 qps="n/a"
    before=$(pss_kb $pids_of)
    rm -f "$work/ready"
    python3 "$work/hold.py" "$proto" "$port" "$user" "$password" "$n" "$work/ready" & local py=$!
    while [ ! -e "$work/ready" ]; do
        kill -0 "$py" 2>/dev/null || { echo "client failed" >&2; return 1; }
        sleep 0.5
    done
    sleep 3
    after=$(pss_kb $pids_of)
    if [ "$7" = filegate ]; then c0=$(commits); sleep 10; c1=$(commits); qps=$(python3 -c "print(f'{($c1-$c0)/10:.1f}')"); fi
    kill "$py"; wait "$py" 2>/dev/null || true
    sleep 2
    echo "$(python3 -c "print(f'{($after-$before)/$n:.1f}')") $qps"
}

declare -A R
# filegate on PostgreSQL, API keys (SHA-256 login, no argon2) for SFTP; a password for FTP.
sftp_port=$(free_port); ftp_port=$(free_port)
cat > "$work/filegate.toml" <<CFG
[server]
data_dir = "$work/fg"
database_url = "$db_url"
[auth.lockout]
enabled = false
[sftp]
listen = "127.0.0.1:$sftp_port"
max_sessions_per_login = 100000
[ftp]
listen = "127.0.0.1:$ftp_port"
[webdav]
enabled = false
[api]
enabled = false
[limits]
max_connections = $(( max_level * 2 + 100 ))
max_connections_per_address = $(( max_level * 2 + 100 ))
CFG
fg() { "$bin" --config "$work/filegate.toml" "$@"; }
if [[ " $SERVERS " == *" filegate "* ]]; then
    fg user add bench --password-stdin <<<"bench-password-1" >/dev/null
    fg user grant bench / full >/dev/null
    key_json=$(fg key create --user bench --name idle --json)
    key_id=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['id'])" "$key_json")
    key_secret=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['key'])" "$key_json")
    fg serve >"$work/fg.out" 2>"$work/fg.log" & fg_pid=$!; pids+=($fg_pid)
    for _ in $(seq 1 100); do grep -q "ftp listening" "$work/fg.log" && break; sleep 0.2; done
    for n in $LEVELS; do
        R["filegate sftp $n"]=$(measure "$fg_pid" sftp "$sftp_port" "@api-$key_id" "$key_secret" "$n" filegate)
        echo "measured filegate sftp $n: ${R["filegate sftp $n"]}" >&2
        R["filegate ftp $n"]=$(measure "$fg_pid" ftp "$ftp_port" bench bench-password-1 "$n" filegate)
        echo "measured filegate ftp $n: ${R["filegate ftp $n"]}" >&2
    done
fi

if [[ " $SERVERS " == *" openssh "* ]]; then
    id fgbench >/dev/null 2>&1 || useradd --create-home --shell /bin/sh fgbench
    echo "fgbench:bench-password-1" | chpasswd
    ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host_key"
    sshd_port=$(free_port)
    cat > "$work/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $sshd_port
HostKey $work/sshd_host_key
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
AllowUsers fgbench
Subsystem sftp internal-sftp
PidFile $work/sshd.pid
MaxStartups $(( max_level + 10 ))
MaxSessions 10
CFG
    mkdir -p /run/sshd
    /usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" & sshd_pid=$!; pids+=($sshd_pid)
    sleep 1
    for n in $LEVELS; do
        if [ "$n" -gt 1000 ]; then R["openssh sftp $n"]="skipped (a process per session)"; continue; fi
        R["openssh sftp $n"]=$(measure "$sshd_pid" sftp "$sshd_port" fgbench bench-password-1 "$n" openssh)
        echo "measured openssh sftp $n: ${R["openssh sftp $n"]}" >&2
    done
fi

if [[ " $SERVERS " == *" vsftpd "* ]]; then
    id fgbench >/dev/null 2>&1 || useradd --create-home --shell /bin/sh fgbench
    echo "fgbench:bench-password-1" | chpasswd
    vs_port=$(free_port)
    mkdir -p "$work/vs-empty"
    cat > "$work/vsftpd.conf" <<CFG
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$vs_port
background=NO
local_enable=YES
write_enable=YES
anonymous_enable=NO
seccomp_sandbox=NO
secure_chroot_dir=$work/vs-empty
pam_service_name=vsftpd
max_clients=$(( max_level + 10 ))
max_per_ip=$(( max_level + 10 ))
xferlog_enable=NO
idle_session_timeout=600
CFG
    /usr/sbin/vsftpd "$work/vsftpd.conf" & vs_pid=$!; pids+=($vs_pid)
    sleep 1
    for n in $LEVELS; do
        if [ "$n" -gt 1000 ]; then R["vsftpd ftp $n"]="skipped (processes per session)"; continue; fi
        R["vsftpd ftp $n"]=$(measure "$vs_pid" ftp "$vs_port" fgbench bench-password-1 "$n" vsftpd || echo "failed")
        echo "measured vsftpd ftp $n: ${R["vsftpd ftp $n"]}" >&2
    done
fi

echo
echo "Idle sessions, 127.0.0.1, $(nproc) cores; filegate on PostgreSQL (store queries = committed transactions/s)"
printf '%-10s %-6s %8s %18s %14s\n' server proto sessions "KiB/session (PSS)" "store q/s"
for server in $SERVERS; do
    for proto in sftp ftp; do
        for n in $LEVELS; do
            v="${R["$server $proto $n"]:-}"; [ -z "$v" ] && continue
            case "$v" in skipped*|failed*) printf '%-10s %-6s %8s %s\n' "$server" "$proto" "$n" "$v"; continue;; esac
            read -r kib qps <<<"$v"
            printf '%-10s %-6s %8s %18s %14s\n' "$server" "$proto" "$n" "$kib" "$qps"
        done
    done
done
