# Helpers shared by the benchmark scripts (sourced; they set `pids` and `work` before).

die() { echo "bench: $*" >&2; exit 1; }

# Stops what the script started: the pids in `pids`, and those that a subshell listed in
# $work/pids (its own `pids` does not reach the caller).
stop_started() {
    [[ -f $work/pids ]] && mapfile -t -O "${#pids[@]}" pids <"$work/pids"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# The scripts' EXIT trap: stops what they started (and removes their brokers' files), runs the
# script's own `cleanup_extra` if it has one, and keeps $work (the logs) only on failure.
cleanup() {
    local status=$?
    stop_started
    remove_tansu_dirs
    if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
    if ((status == 0)); then rm -rf "$work"; else echo "logs kept in $work" >&2; fi
}

ensure_wrk() {
    command -v wrk >/dev/null && return
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    echo "installing wrk..." >&2
    "${sudo[@]}" apt-get install -y wrk >/dev/null ||
        { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y wrk >/dev/null; } ||
        die "could not install wrk"
}

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# start NAME ADDR LOG CMD...: runs CMD in the background, waits until ADDR accepts.
start() {
    local name=$1 addr=$2 log=$3
    shift 3
    port_open "$addr" && die "$addr is already taken; stop whatever listens there first"
    "$@" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        port_open "$addr" && { started_pid=$pid; return; }
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$name exited before listening on $addr"; }
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "$name did not listen on $addr within 60 s"
}

# wrk_stats FILE: "<req/s> <p50 ms> <p99 ms> <errors>" from wrk's --latency output, errors
# being non-2xx/3xx answers plus socket errors.
wrk_stats() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v * 60000
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad += $NF }
        /Socket errors:/ { gsub(/,/, ""); bad += $4 + $6 + $8 + $10 }
        END { printf "%s %s %s %d\n", rps, p50, p99, bad }
    ' "$1"
}

hwm() { awk '/^VmHWM:/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status"; }

row() { printf '%-10s %12s %10s %10s %8s %10s\n' "$@"; }

# A Kafka broker of the run's own on 127.0.0.1:19092 (tansu, its SQLite file in /dev/shm),
# started afresh by each call: an empty log, no other client. `stop_tansu` stops it.
own_tansu=
start_tansu() {
    command -v tansu >/dev/null || die "tansu is not installed (scripts/test installs it: cargo install tansu@0.6.0 --locked --features libsql)"
    stop_tansu
    port_open 127.0.0.1:19092 && die "127.0.0.1:19092 is already taken; stop whatever listens there first"
    local dir
    dir=$(mktemp -d /dev/shm/junction-bench-tansu.XXXXXX 2>/dev/null || mktemp -d "$work/tansu.XXXXXX")
    (cd "$dir" && exec tansu broker --listener-url tcp://127.0.0.1:19092 \
        --advertised-listener-url tcp://127.0.0.1:19092 --storage-engine sqlite://tansu.db) >>"$work/tansu.log" 2>&1 &
    own_tansu="$! $dir"
    # `run` is a subshell: the EXIT trap finds the broker and its folder through $work.
    echo "$!" >>"$work/pids"
    echo "$dir" >>"$work/tansu-dirs"
    local deadline=$((SECONDS + 30))
    until port_open 127.0.0.1:19092; do
        kill -0 "${own_tansu%% *}" 2>/dev/null || { tail -n 20 "$work/tansu.log" >&2; die "tansu exited"; }
        ((SECONDS < deadline)) || die "tansu did not listen on 127.0.0.1:19092"
        sleep 0.1
    done
}
stop_tansu() {
    [[ -n $own_tansu ]] || return 0
    kill "${own_tansu%% *}" 2>/dev/null || true
    wait "${own_tansu%% *}" 2>/dev/null || true
    rm -rf "${own_tansu#* }"
    own_tansu=
}
remove_tansu_dirs() {
    if [[ -f $work/tansu-dirs ]]; then xargs rm -rf <"$work/tansu-dirs"; fi
}
