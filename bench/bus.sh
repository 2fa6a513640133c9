#!/usr/bin/env bash
# Junction vs a plain rdkafka / lapin loop on the same work: consume a CRM deal from one topic,
# transform it, publish it to another, commit (ack) only once the output is acknowledged.
# See bench/README.md, "Bus".
#
#   bench/bus.sh [--count 10000] [--rate 200] [--paced 2000] [--only kafka|amqp]
#
# Kafka is JUNCTION_BENCH_KAFKA; without it the script starts a tansu of its own on
# 127.0.0.1:19092 (its SQLite file in /dev/shm), fresh for every run: tansu slows down as its
# file grows, which would favour whichever side ran first. RabbitMQ is JUNCTION_BENCH_AMQP (default
# amqp://guest:guest@127.0.0.1:5672/%2f). Every Kafka consumer of the run (the drain, the
# baseline, Junction) waits at most JUNCTION_BENCH_FETCH_WAIT_MS (default 10) in a fetch:
# tansu 0.6 holds every fetch for half its wait even when it has records to return.
set -euo pipefail

count=10000
rate=200
paced=2000
only=
deal=${DEAL:-../shared/bench/deal.json}
while (($#)); do
    case $1 in
        --count) count=${2:?}; shift 2 ;;
        --rate) rate=${2:?}; shift 2 ;;
        --paced) paced=${2:?}; shift 2 ;;
        --only) only=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
[[ -f $deal ]] || { echo "no deal file at $deal (run from the repo root)" >&2; exit 2; }
export DEAL=$(realpath "$deal")
kafka="kafka://${JUNCTION_BENCH_KAFKA:-127.0.0.1:19092}"
export JUNCTION_BENCH_FETCH_WAIT_MS=${JUNCTION_BENCH_FETCH_WAIT_MS:-10}
amqp=${JUNCTION_BENCH_AMQP:-amqp://guest:guest@127.0.0.1:5672/%2f}
min_ratio=0.50
addr=127.0.0.1:18090

work=$(mktemp -d "${TMPDIR:-/tmp}/junction-bus-bench.XXXXXX")
pids=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source bench/lib.sh

fresh_broker=
if [[ -z ${JUNCTION_BENCH_KAFKA:-} && ${only:-kafka} == kafka ]]; then
    fresh_broker=1
fi

echo "building junction and bus-bench (release)..." >&2
cargo build --release --quiet -p junction -p junction-bench-bus
junction=target/release/junction
tool=target/release/bus-bench

# wait_for FILE TEXT PID: until FILE holds TEXT (or PID died).
wait_for() {
    local deadline=$((SECONDS + 60))
    until grep -q "$2" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || { tail -n 20 "$1" >&2; die "$1: exited before '$2'"; }
        ((SECONDS < deadline)) || { tail -n 20 "$1" >&2; die "$1: no '$2' within 60 s"; }
        sleep 0.1
    done
}

# The Junction project: one route, consume → transform → publish, 64 messages at once.
project() { # BUS TAG
    local dir=$work/project-$2 connector
    mkdir -p "$dir/routes"
    if [[ $1 == kafka://* ]]; then
        connector="{ kind: kafka, brokers: \"${1#kafka://}\", partitions: 6, options: { fetch.wait.max.ms: \"$JUNCTION_BENCH_FETCH_WAIT_MS\" } }"
    else
        connector="{ kind: amqp, url: \"$1\" }"
    fi
    cat >"$dir/junction.yaml" <<YAML
routes: [routes/]
connectors:
  events: $connector
YAML
    cat >"$dir/routes/relay.yaml" <<YAML
route: relay
from: { connector: events, topic: in-$2, group: g-$2 }
max_in_flight: 64
steps:
  - transform: 'let total = 0; for item in body.items { total += item.budget; } body.processed = true; body.total = total; body'
  - to: { connector: events, topic: out-$2 }
YAML
    echo "$dir"
}

# run BUS TARGET COUNT RATE: one run on fresh topics; prints "<msgs/s> <p50> <p99> <rss>".
# RATE 0: COUNT messages wait on the input topic before the target starts (its throughput);
# otherwise they are sent at RATE per second while it runs (its latency).
run() {
    local bus=$1 target=$2 n=$3 r=$4 tag pid
    tag=$target-$(date +%s%N)
    if [[ -n $fresh_broker && $bus == kafka://* ]]; then
        start_tansu
    fi
    "$tool" drain "$bus" "out-$tag" "$n" >"$work/$tag.drain" 2>"$work/$tag.drain.err" &
    local drain=$!
    echo "$drain" >>"$work/pids"
    wait_for "$work/$tag.drain.err" ready "$drain"
    if ((r == 0)); then
        "$tool" produce "$bus" "in-$tag" "$n" 0 "g-$tag" || die "$target: produce failed"
    fi
    if [[ $target == baseline ]]; then
        "$tool" baseline "$bus" "in-$tag" "out-$tag" "g-$tag" >"$work/$tag.log" 2>&1 &
        pid=$!
        echo "$pid" >>"$work/pids"
        wait_for "$work/$tag.log" ready "$pid"
    else
        local dir store
        dir=$(project "$bus" "$tag")
        store="sqlite://$work/$tag.db"
        JUNCTION_LISTEN=$addr JUNCTION_STORE=$store JUNCTION_LOG=warn "$junction" run "$dir" >"$work/$tag.log" 2>&1 &
        pid=$!
        echo "$pid" >>"$work/pids"
        local deadline=$((SECONDS + 60))
        until port_open "$addr"; do
            kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/$tag.log" >&2; die "junction exited"; }
            ((SECONDS < deadline)) || die "junction did not listen on $addr"
            sleep 0.1
        done
    fi
    if ((r > 0)); then
        "$tool" produce "$bus" "in-$tag" "$n" "$r" || die "$target: produce failed"
    fi
    wait "$drain" || { cat "$work/$tag.drain.err" >&2; die "$target: drain failed"; }
    local rss
    rss=$(hwm "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    stop_tansu
    echo "$(cat "$work/$tag.drain") $rss"
}

row() { printf '%-6s %-9s %10s %10s %10s %10s\n' "$@"; }

status=0
for bus in "$kafka" "$amqp"; do
    name=${bus%%://*}
    [[ -n $only && $only != "$name" ]] && continue
    echo
    echo "$name: a backlog of $count messages (msgs/s: first to last output; RSS), then $paced sent at $rate/s (latency)"
    row bus target "msgs/s" "p50_ms" "p99_ms" "max_rss"
    declare -A rate_of=()
    for target in baseline junction; do
        read -r mps _ _ rss rss_unit < <(run "$bus" "$target" "$count" 0)
        read -r _ p50 p99 _ _ < <(run "$bus" "$target" "$paced" "$rate")
        rate_of[$target]=$mps
        row "$name" "$target" "$mps" "$p50" "$p99" "$rss $rss_unit"
    done
    ratio=$(awk -v j="${rate_of[junction]}" -v b="${rate_of[baseline]}" 'BEGIN { printf "%.2f", j / b }')
    if awk -v r="$ratio" -v m="$min_ratio" 'BEGIN { exit !(r >= m) }'; then
        echo "  PASS  $name msgs/s junction/baseline = $ratio (target ≥ $min_ratio)"
    else
        echo "  FAIL  $name msgs/s junction/baseline = $ratio (target ≥ $min_ratio)"
        status=1
    fi
done
exit $status
