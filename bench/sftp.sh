#!/usr/bin/env bash
# SFTP benchmark: filegate beside OpenSSH's sshd (internal-sftp) on 127.0.0.1, both serving
# the same folder, measured with the same OpenSSH client, alternately (bench/lib.sh). Prints
# medians, min–max and ratios of MB/s and both servers' CPU seconds per GiB per cipher,
# logins/s, memory for 50 idle sessions.
#
# usage: bench/sftp.sh [path/to/filegate]    (needs root: installs openssh-server, adds a
#        user "fgbench"; SIZE_MB=1024 LOGINS=50 IDLE=50 RUNS=5 may be overridden; CIPHERS="aes128-gcm@openssh.com"
#        for a shorter run; EXTRA_SFTP_OPTS="-B 32768" makes the client ignore the servers'
#        limits@openssh.com and keep its 32 KiB requests, as against a server without it)
set -euo pipefail
bin="$(realpath "${1:-target/release/filegate}")"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MB="${SIZE_MB:-1024}"; LOGINS="${LOGINS:-50}"; IDLE="${IDLE:-50}"
CIPHERS="${CIPHERS:-aes128-gcm@openssh.com chacha20-poly1305@openssh.com}"
read -r -a extra <<<"${EXTRA_SFTP_OPTS:-}"
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }
command -v sshpass >/dev/null || { apt-get install -y -qq sshpass >/dev/null; }
python3 -c "import paramiko" 2>/dev/null || pip install -q paramiko
id fgbench >/dev/null 2>&1 || useradd --create-home --shell /bin/sh fgbench
usermod -p "*" fgbench   # no password, but not locked (sshd refuses locked accounts)

work="$(mktemp -d /tmp/filegate-bench.XXXXXX)"; chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; ab_untrack; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Shared storage, owned by the OpenSSH user so both servers can write it.
store="$work/data/files"; mkdir -p "$store/bench"
ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$store/bench/big.bin"
cp "$store/bench/big.bin" "$work/upload.bin"
chown -R fgbench "$work/data"

# OpenSSH: private sshd on 127.0.0.1, key auth for fgbench only.
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host_key"
install -m 600 "$work/client_key.pub" "$work/authorized_keys"; chown fgbench "$work/authorized_keys"
sshd_port="$(free_port)"
cat > "$work/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $sshd_port
HostKey $work/sshd_host_key
AuthorizedKeysFile $work/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers fgbench
Subsystem sftp internal-sftp
PidFile $work/sshd.pid
MaxStartups 100:30:200
MaxSessions 100
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" & sshd_pid=$!; pids+=($sshd_pid)

# filegate: same folder, user "bench" with the same client key.
export FILEGATE_DATA_DIR="$work/fg" FILEGATE_SFTP_LISTEN="127.0.0.1:$(free_port)"
cat > "$work/filegate.toml" <<CFG
[server]
storage_dir = "$store"
[auth.lockout]
enabled = false
[sftp]
max_sessions_per_login = 1000
[limits]
max_connections_per_address = 1000
CFG
fg() { "$bin" --config "$work/filegate.toml" "$@"; }
fg user add bench --password-stdin <<<"bench-password-1" >/dev/null
fg user grant bench / full >/dev/null
fg user add-key bench "$work/client_key.pub" >/dev/null
"$bin" --config "$work/filegate.toml" serve >"$work/fg.out" 2>"$work/fg.log" & fg_pid=$!; pids+=($fg_pid)
sleep 1.5
fg_port="${FILEGATE_SFTP_LISTEN##*:}"

opts=(-q -oStrictHostKeyChecking=no -oUserKnownHostsFile=/dev/null -oLogLevel=ERROR -i "$work/client_key" -oIdentitiesOnly=yes -oBatchMode=yes "${extra[@]}")
target() { if [ "$1" = filegate ]; then echo "-P $fg_port bench@127.0.0.1"; else echo "-P $sshd_port fgbench@127.0.0.1"; fi; }
remote_dir() { if [ "$1" = filegate ]; then echo "/bench"; else echo "$store/bench"; fi; }

now() { date +%s.%N; }
declare -A R
server_pid() { if [ "$1" = filegate ]; then echo "$fg_pid"; else echo "$sshd_pid"; fi; }

transfer() { # server cipher direction
    local server=$1 cipher=$2 dir=$3 rd; rd="$(remote_dir "$server")"
    if [ "$dir" = down ]; then echo "get $rd/big.bin /dev/null" > "$work/b-$server"; else echo "put $work/upload.bin $rd/up-$server.bin" > "$work/b-$server"; fi
    # shellcheck disable=SC2046
    sftp "${opts[@]}" -c "$cipher" -b "$work/b-$server" $(target "$server") >/dev/null
}

# Idle sessions first, on freshly started servers (before transfers grow the heap).
pss_kb() { # proportional set size (kB) of all the server's processes (shared pages split fairly)
    local p list
    if [ "$1" = filegate ]; then list="$fg_pid"; else list="$(pgrep -f "sshd.*$work" || true) $(pgrep -f 'sshd: fgbench' || true)"; fi
    for p in $list; do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true; done | awk '{s+=$1} END {print s+0}'
}
idle() { # server -> MiB added by $IDLE idle SFTP sessions
    local server=$1 port user before after
    if [ "$server" = filegate ]; then port=$fg_port; user=bench; else port=$sshd_port; user=fgbench; fi
    before=$(pss_kb "$server")
    python3 - "$port" "$user" "$work/client_key" "$IDLE" "$work/idle.ready" <<'PY' &
import sys, time, paramiko
port, user, key, n, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
pkey = paramiko.Ed25519Key.from_private_key_file(key)
held = []
for _ in range(n):
    t = paramiko.Transport(("127.0.0.1", port)); t.connect(username=user, pkey=pkey)
    held.append((t, paramiko.SFTPClient.from_transport(t)))
open(ready, "w").close()
time.sleep(8)
PY
    local py=$!
    while [ ! -e "$work/idle.ready" ]; do sleep 0.2; done
    sleep 2; after=$(pss_kb "$server"); wait "$py"; rm -f "$work/idle.ready"
    echo "$server PSS before=${before} kB after=${after} kB" >&2
    python3 -c "print(f'{($after-$before)/1024:.1f}')"
}
for server in openssh filegate; do R["$server idle"]=$(idle "$server"); done

echo "load before the transfers: $(ab_load)" >&2
for cipher in $CIPHERS; do
    for dir in down up; do
        eval "run_${dir}() { transfer \"\$1\" $cipher $dir; }"
        ab "$dir MB/s ${cipher%%@*}" "$SIZE_MB" "run_${dir}" filegate openssh
    done
done
cmp "$work/upload.bin" "$store/bench/up-filegate.bin" || { echo "filegate upload differs"; exit 1; }

logins() { # server parallel -> logins/s
    local server=$1 par=$2 per=$(( LOGINS / $2 )) t0 t1
    echo "pwd" > "$work/p"
    t0=$(now)
    for _ in $(seq 1 "$par"); do
        ( for _ in $(seq 1 "$per"); do sftp "${opts[@]}" -b "$work/p" $(target "$server") >/dev/null; done ) &
    done
    wait_jobs
    t1=$(now); python3 -c "print(f'{$per*$par/($t1-$t0):.1f}')"
}
wait_jobs() { for j in $(jobs -p); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }
seq_logins() { logins "$1" 1; }
par_logins() { LOGINS=$(( LOGINS < 20 ? 20 : LOGINS )) logins "$1" 20; }
one "logins/s seq" "/s" seq_logins filegate openssh
one "logins/s 20 parallel" "/s" par_logins filegate openssh

ab_table "SFTP benchmark: ${SIZE_MB} MiB file, same OpenSSH client, 127.0.0.1" filegate openssh
f=${R["filegate idle"]}; o=${R["openssh idle"]}
printf '%-40s %12s %12s %8s\n' "MiB for $IDLE idle sessions (PSS added)" "$f" "$o" "$(ab_ratio "$f" "$o")"
