#!/usr/bin/env bash
# The whole flow: deals from the amoCRM webhook to their rows in the DWH, through the root
# project's routes against the simulators, on embedded defaults (SQLite, in-process cache, the
# embedded bus) and on PostgreSQL + Redis + Kafka, in one run. See bench/README.md, "Whole flow".
#
#   bench/flow.sh [--count 1000] [--rate 20] [--seconds 15]
#
# JUNCTION_BENCH_PG: the Postgres server (default postgres://postgres@127.0.0.1:5432), where
# two throw-away databases are made and dropped; JUNCTION_BENCH_REDIS (default
# redis://127.0.0.1:6379); Kafka is JUNCTION_BENCH_KAFKA, or a tansu of the run's own on
# 127.0.0.1:19092 (its SQLite file in /dev/shm).
set -euo pipefail

count=1000
rate=20
seconds=15
while (($#)); do
    case $1 in
        --count) count=${2:?}; shift 2 ;;
        --rate) rate=${2:?}; shift 2 ;;
        --seconds) seconds=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
pg=${JUNCTION_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
redis=${JUNCTION_BENCH_REDIS:-redis://127.0.0.1:6379}
store_db=junction_bench_flow_store_$$
masterdeal_db=junction_bench_flow_md_$$

work=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-flow.XXXXXX")
pids=()
# lib.sh's `cleanup` also drops the throw-away databases.
cleanup_extra() {
    for db in "$store_db" "$masterdeal_db"; do
        psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source bench/lib.sh

command -v psql >/dev/null || die "psql is needed to make the run's databases (apt-get install postgresql-client)"
redis-cli -u "$redis" ping >/dev/null 2>&1 || die "no Redis at $redis (set JUNCTION_BENCH_REDIS)"
echo "building junction and flow-bench (release)..." >&2
cargo build --release --quiet -p junction -p junction-bench-flow

# The repository's project, with the CRM's request limit lifted (amoCRM allows 7 a second,
# which would be all this measured): the flow's own capacity is measured, not amoCRM's.
project=$work/project
mkdir -p "$project"
cp -r junction.yaml prompts.lock routes transforms schemas prompts "$project/"
sed -i 's/limits: { per_second: 6, concurrency: 4 }   # amoCRM allows 7\/s/limits: { concurrency: 64 }/' "$project/junction.yaml"
grep -q 'limits: { concurrency: 64 }' "$project/junction.yaml" || die "junction.yaml's CRM limit changed; update this script"

# run LABEL PROJECT ENV...: one deployment's line from flow-bench.
run() {
    local label=$1 dir=$2
    shift 2
    env "$@" JUNCTION_LISTEN=127.0.0.1:0 JUNCTION_ADMIN_LISTEN=127.0.0.1:0 \
        target/release/flow-bench target/release/junction "$dir" "$count" "$rate" "$seconds" "$work/$label.log" ||
        die "$label: flow-bench failed (junction's log: $work/$label.log)"
}

row() { printf '%-9s %8s %9s %9s %9s %12s %6s %9s %5s\n' "$@"; }

echo
echo "$count deals at once (deals/s: first webhook to last DWH row), then $rate a second for ${seconds}s"
echo "(latency: webhook to DWH row; the stages' shares of it; junction's max RSS)"
row setup "deals/s" "p50_ms" "p99_ms" "gateway" "masterdeal" "dwh" "max_rss" lost
declare -A per_second=()
status=0
read -r dps p50 p99 gw md dwh rss lost < <(run embedded "$project" \
    JUNCTION_STORE="sqlite://$work/junction.db" MASTERDEAL_DATABASE="sqlite://$work/masterdeal.db" \
    JUNCTION_CACHE=memory JUNCTION_BUS=embedded)
per_second[embedded]=$dps
row embedded "$dps" "$p50" "$p99" "$gw%" "$md%" "$dwh%" "$rss MiB" "$lost"
((lost == 0)) || status=1

for db in "$store_db" "$masterdeal_db"; do
    psql -q "$pg/postgres" -c "CREATE DATABASE $db" >/dev/null || die "cannot create a database on $pg"
done
if [[ -n ${JUNCTION_BENCH_KAFKA:-} ]]; then
    brokers=$JUNCTION_BENCH_KAFKA
else
    start_tansu
    brokers=127.0.0.1:19092
fi
# The bus as a connector of its own, for the fetch wait: tansu 0.6 holds every fetch for half
# of it even when it has records to return (librdkafka's default is 500 ms). Its topics go
# under a prefix of the run's, for a broker the runs share.
servers=$work/project-servers
cp -r "$project" "$servers"
cat >>"$servers/junction.yaml" <<YAML

  events:
    kind: kafka
    brokers: "$brokers"
    partitions: 2
    topic_prefix: flow-$$-$(date +%s).
    options: { fetch.wait.max.ms: "10" }
YAML
read -r dps p50 p99 gw md dwh rss lost < <(run servers "$servers" \
    JUNCTION_STORE="$pg/$store_db" MASTERDEAL_DATABASE="$pg/$masterdeal_db" JUNCTION_CACHE="$redis" \
    JUNCTION_BUS=events)
stop_tansu
per_second[servers]=$dps
row servers "$dps" "$p50" "$p99" "$gw%" "$md%" "$dwh%" "$rss MiB" "$lost"
((lost == 0)) || status=1

ratio=$(awk -v s="${per_second[servers]}" -v e="${per_second[embedded]}" 'BEGIN { printf "%.2f", s / e }')
echo
echo "  deals/s servers/embedded = $ratio"
if ((status == 0)); then
    echo "  PASS  every deal accepted reached the DWH"
else
    echo "  FAIL  deals were lost (see the lost column)"
fi
exit $status
