# bench/lib.sh: the one fair-comparison helper of the bench/*.sh scripts (sourced, not run).
#
# `ab LABEL MIB FN A B` measures one transfer of MIB MiB, done by the script's function
# `FN SERVER`, on servers A (filegate) and B (the peer) alternately: one warm-up each, then
# RUNS (default 5, at least 5 unless RUNS says otherwise) timed runs in the order A B A B ...
# For every run it also takes the server's CPU time (utime+stime of its processes, and of
# the children they have reaped, from /proc/<pid>/stat), so the table shows CPU seconds per
# GiB — the figure that depends on neither the client nor the neighbours' noise. The
# script tells the helper how to find a server's processes by defining `server_pid SERVER`
# (the root process: filegate, vsftpd's or sshd's listener, nginx's master).
#
# Each result is one row: median MB/s and min–max for both servers, the ratio of medians
# (A/B, > 1: A is faster), the median CPU s/GiB of both and their ratio (A/B, < 1: A is
# cheaper), and the load average at the end of the row. `ab_table` prints the rows, and
# `ab_value KEY` gives one figure for later checks.
#
# `one LABEL UNIT FN A B` does the same for figures measured by the script itself (FN SERVER
# prints one number; lower_is_better=1 as the sixth argument flips the ratio's sense in the
# table heading only), for logins/s, PROPFIND ms and the like.

RUNS="${RUNS:-5}"
declare -a AB_ROWS=()
declare -A AB_VALUES=()
AB_TICK="$(getconf CLK_TCK)"

ab_now() { date +%s.%N; }
ab_load() { cut -d' ' -f1-3 /proc/loadavg; }

# CPU seconds of process PID and all its live descendants, each with the time of the
# children it has reaped (cutime/cstime): a forking server's finished sessions stay counted.
ab_cpu_tree() {
    python3 - "$1" "$AB_TICK" <<'PY'
import os, sys
root, tick = int(sys.argv[1]), int(sys.argv[2])
parent, cpu = {}, {}
for name in os.listdir("/proc"):
    if not name.isdigit():
        continue
    try:
        with open(f"/proc/{name}/stat") as f:
            text = f.read()
    except OSError:
        continue
    fields = text[text.rindex(")") + 2:].split()
    pid = int(name)
    parent[pid] = int(fields[1])
    cpu[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
total, todo = 0, [root]
while todo:
    pid = todo.pop()
    total += cpu.get(pid, 0)
    todo.extend(p for p, pp in parent.items() if pp == pid)
print(f"{total / tick:.3f}")
PY
}

# Where possible (root, cgroup v1 cpuacct) each server gets a cpuacct cgroup of its own at its
# first measurement (its processes moved in, later forks inherit it): then its CPU time is
# read from there, which also counts session processes that were never reaped by the server's
# root process (a forking server's grandchildren). Otherwise the /proc tree above is used.
declare -A AB_CG=()
ab_track() { # SERVER
    local cg="/sys/fs/cgroup/cpuacct/fgbench-$$-$1" p root
    [ -n "${AB_CG[$1]:-}" ] && return 0
    mkdir -p "$cg" 2>/dev/null || return 0
    root="$(server_pid "$1")"
    for p in $root $(pgrep -P "$root" || true); do echo "$p" > "$cg/cgroup.procs" 2>/dev/null || return 0; done
    AB_CG[$1]="$cg"
}
ab_cpu() { # SERVER -> CPU seconds so far
    if [ -n "${AB_CG[$1]:-}" ]; then
        awk '{printf "%.3f\n", $1 / 1e9}' "${AB_CG[$1]}/cpuacct.usage"
    else
        ab_cpu_tree "$(server_pid "$1")"
    fi
}
ab_untrack() { # removes the cgroups (call after the servers were stopped)
    local cg
    for cg in "${AB_CG[@]}"; do rmdir "$cg" 2>/dev/null || true; done
}

# Waits (up to 5 s) until the server's transient children (forked per session) are gone,
# so that their CPU time has been reaped into the parent's before it is read.
ab_quiesce() {
    local root children i
    root="$(server_pid "$1")"
    for i in $(seq 1 50); do
        children="$({ pgrep -P "$root" 2>/dev/null || true; } | wc -l)"
        [ "$children" -le "${AB_RESIDENT[$1]:-0}" ] && return 0
        sleep 0.1
    done
}
# Long-lived children of a server (nginx workers): counted once, at the first measurement.
declare -A AB_RESIDENT=()

# Median, min and max of numbers on stdin: "median min max".
ab_stats() {
    python3 -c '
import statistics, sys
v = [float(x) for x in sys.stdin.read().split()]
print(f"{statistics.median(v):.2f} {min(v):.2f} {max(v):.2f}")'
}

ab_fmt_range() { # median min max [decimals]
    python3 -c "d=${4:-0}; print(f'{$1:.{d}f} ({$2:.{d}f}–{$3:.{d}f})')"
}

ab() { # LABEL MIB FN A B
    local label=$1 mib=$2 fn=$3 a=$4 b=$5 s i t0 t1 c0 c1
    local -A speeds=() cpus=()
    for s in "$a" "$b"; do
        [ -n "${AB_RESIDENT[$s]:-}" ] || AB_RESIDENT[$s]="$({ pgrep -P "$(server_pid "$s")" || true; } | wc -l)"
        ab_track "$s"
        "$fn" "$s" >/dev/null                      # warm-up (page cache, key exchange)
    done
    for i in $(seq 1 "$RUNS"); do
        for s in "$a" "$b"; do
            ab_quiesce "$s"; c0="$(ab_cpu "$s")"
            t0="$(ab_now)"; "$fn" "$s" >/dev/null; t1="$(ab_now)"
            ab_quiesce "$s"; c1="$(ab_cpu "$s")"
            speeds[$s]+=" $(python3 -c "print($mib/($t1-$t0))")"
            cpus[$s]+=" $(python3 -c "print(($c1-$c0)/($mib/1024))")"
        done
    done
    local sa sb ca cb
    read -r -a sa <<<"$(ab_stats <<<"${speeds[$a]}")"
    read -r -a sb <<<"$(ab_stats <<<"${speeds[$b]}")"
    read -r -a ca <<<"$(ab_stats <<<"${cpus[$a]}")"
    read -r -a cb <<<"$(ab_stats <<<"${cpus[$b]}")"
    AB_VALUES["$label $a"]=${sa[0]}; AB_VALUES["$label $b"]=${sb[0]}
    AB_VALUES["$label $a cpu"]=${ca[0]}; AB_VALUES["$label $b cpu"]=${cb[0]}
    AB_ROWS+=("$(printf '%-26s %22s %22s %6s | %15s %15s %6s | %s' "$label" \
        "$(ab_fmt_range "${sa[@]}")" "$(ab_fmt_range "${sb[@]}")" "$(ab_ratio "${sa[0]}" "${sb[0]}")" \
        "$(ab_fmt_range "${ca[@]}" 2)" "$(ab_fmt_range "${cb[@]}" 2)" "$(ab_ratio "${ca[0]}" "${cb[0]}")" \
        "$(ab_load)")")
    echo "  done: $label (load $(ab_load))" >&2
}

one() { # LABEL UNIT FN A B — FN SERVER prints one figure; RUNS alternated runs, no warm-up
    local label=$1 unit=$2 fn=$3 a=$4 b=$5 s i
    local -A vals=()
    for i in $(seq 1 "$RUNS"); do
        for s in "$a" "$b"; do vals[$s]+=" $("$fn" "$s")"; done
    done
    local va vb
    read -r -a va <<<"$(ab_stats <<<"${vals[$a]}")"
    read -r -a vb <<<"$(ab_stats <<<"${vals[$b]}")"
    AB_VALUES["$label $a"]=${va[0]}; AB_VALUES["$label $b"]=${vb[0]}
    AB_ROWS+=("$(printf '%-26s %22s %22s %6s | %-37s | %s' "$label ($unit)" \
        "$(ab_fmt_range "${va[@]}" 1)" "$(ab_fmt_range "${vb[@]}" 1)" "$(ab_ratio "${va[0]}" "${vb[0]}")" \
        "" "$(ab_load)")")
    echo "  done: $label (load $(ab_load))" >&2
}

ab_ratio() { python3 -c "print(f'{$1/$2:.2f}' if $2 else 'n/a')"; }
ab_value() { echo "${AB_VALUES[$1]}"; }

ab_table() { # TITLE A B
    echo
    echo "$1"
    echo "$(nproc) cores; $RUNS timed runs per server after one warm-up each, alternated $2 $3 $2 $3 ...;"
    echo "median (min–max); ratio = $2/$3 of the medians (MB/s: > 1 means $2 is faster; CPU s/GiB"
    echo "and ms: < 1 means $2 is cheaper); load average (1 5 15 min) when the row was finished"
    printf '%-26s %22s %22s %6s | %15s %15s %6s | %s\n' "measure" "$2" "$3" "ratio" "$2 CPU s/GiB" "$3 CPU s/GiB" "ratio" "load"
    local row
    for row in "${AB_ROWS[@]}"; do echo "$row"; done
}
