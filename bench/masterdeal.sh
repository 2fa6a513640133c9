#!/usr/bin/env bash
# The MasterDeal REST API against Postgres: create-then-get round trips per second (POST
# /api/v1/deals, then GET /api/v1/deals/{id}), and, in the same run on the same tables, the
# same two statements through pgbench as the baseline. See bench/README.md.
#
#   bench/masterdeal.sh [--duration 10s] [--connections 16]
#
# JUNCTION_BENCH_PG: the Postgres server (default postgres://postgres@127.0.0.1:5432); a
# throwaway database is created on it and dropped afterwards.
set -euo pipefail

duration=10s
connections=16
while (($#)); do
    case $1 in
        --duration) duration=${2:?--duration needs a value}; shift 2 ;;
        --connections) connections=${2:?--connections needs a value}; shift 2 ;;
        -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
pg=${JUNCTION_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
db=junction_bench_md_$$
addr=127.0.0.1:18083
api_key=dev-partner-key-change-me

work=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-md.XXXXXX")
pids=()
# lib.sh's `cleanup` also drops the throw-away database.
cleanup_extra() { psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source bench/lib.sh

command -v pgbench >/dev/null && command -v psql >/dev/null ||
    die "pgbench and psql are needed for the baseline (apt-get install postgresql-client)"
psql -q "$pg/postgres" -c "CREATE DATABASE $db" >/dev/null || die "cannot create a database on $pg"
ensure_wrk
cargo build --release -p junction

# The repository's project, with the API's rate limit lifted: the benchmark measures the
# work, not the limiter.
project=$work/project
mkdir -p "$project"
cp -r junction.yaml prompts.lock routes transforms schemas prompts "$project/"
sed -i 's/rate_limit: { per_second: 200, burst: 400 }/rate_limit: { per_second: 10000000, burst: 10000000 }/' "$project/junction.yaml"
grep -q 'per_second: 10000000' "$project/junction.yaml" || die "junction.yaml's API rate limit changed; update this script"
start junction "$addr" "$work/junction.log" env JUNCTION_LISTEN="$addr" JUNCTION_ADMIN_LISTEN=127.0.0.1:0 \
    JUNCTION_STORE="$pg/$db" MASTERDEAL_DATABASE="$pg/$db" target/release/junction run "$project"
junction_pid=$started_pid

# One round trip by hand: it must create (201) and read back (200) the deal, and it makes
# the tables (migrations run on first use) the baseline then writes to.
id=$(curl -sf "http://$addr/api/v1/deals" -H "x-api-key: $api_key" -H 'content-type: application/json' -d '{
  "external_id": "crm:B-check", "name": "Bench deal", "owner": "bench", "budget": "1000000.00",
  "currency": "RUB", "advertiser": { "name": "Romashka LLC", "inn": "7707083893" } }' |
    sed -n 's/.*"id":"\([^"]*\)".*/\1/p') || die "the create was refused: $(tail -n 5 "$work/junction.log")"
[[ -n $id ]] || die "the create answered no id"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://$addr/api/v1/deals/$id" -H "x-api-key: $api_key") == 200 ]] ||
    die "the created deal does not read back"

# pgbench NAME SCRIPT: runs it for the duration; result[NAME.*] are its round trips/s and latency.
declare -A result
run_pgbench() {
    local out="$work/$1.pgbench"
    pgbench -n -M prepared -c "$connections" -j 2 -T 2 -f "$2" "$pg/$db" >/dev/null 2>&1 ||
        die "pgbench $2 failed on warm-up: $(pgbench -n -c 1 -t 1 -f "$2" "$pg/$db" 2>&1 | tail -n 3)"
    pgbench -n -M prepared -c "$connections" -j 2 -T "${duration%s}" -f "$2" "$pg/$db" >"$out" 2>&1 ||
        { cat "$out" >&2; die "pgbench $2 failed"; }
    result[$1.rps]=$(awk '/^tps = / { printf "%.1f", $3 }' "$out")
    result[$1.p50]=$(awk '/^latency average = / { print $4 }' "$out")
    result[$1.errors]=$(awk '/number of failed transactions:/ { print $5 }' "$out")
}

run_wrk() {
    local out="$work/$1.wrk"
    API_KEY=$api_key wrk -t1 -c"$connections" -d2s -s bench/create_get.lua "http://$addr" >/dev/null
    API_KEY=$api_key wrk -t1 -c"$connections" -d"$duration" --latency -s bench/create_get.lua "http://$addr" >"$out"
    result[$1.rps]=$(awk '/^round_trips_per_sec / { print $2 }' "$out")
    result[$1.errors]=$(awk '/^failed / { print $2 }' "$out")
    local stats
    read -r -a stats < <(wrk_stats "$out")
    result[$1.p50]=${stats[1]}
    result[$1.p99]=${stats[2]}
    [[ -n ${result[$1.rps]} ]] || { cat "$out" >&2; die "could not read the wrk output"; }
}

echo "$connections connections for $duration each, $(nproc) cores, Postgres $(psql -tA "$pg/postgres" -c 'SHOW server_version')"
run_pgbench baseline bench/create_get.sql
run_pgbench full_tx bench/create_get_tx.sql
run_wrk junction

printf '%-10s %16s %16s %8s %10s\n' target round_trips/s latency_ms errors max_rss
printf '%-10s %16s %16s %8s %10s\n' baseline "${result[baseline.rps]}" "avg ${result[baseline.p50]}" "${result[baseline.errors]:-0}" -
printf '%-10s %16s %16s %8s %10s\n' full_tx "${result[full_tx.rps]}" "avg ${result[full_tx.p50]}" "${result[full_tx.errors]:-0}" -
printf '%-10s %16s %16s %8s %10s\n' junction "${result[junction.rps]}" \
    "p50 ${result[junction.p50]} p99 ${result[junction.p99]}" "${result[junction.errors]}" "$(hwm "$junction_pid")"
echo "  (baseline: the INSERT and the SELECT alone; full_tx: every statement Junction sends, in"
echo "   its transaction; latency of a request for junction, of a whole round trip for pgbench)"

ratio=$(awk -v j="${result[junction.rps]}" -v b="${result[baseline.rps]}" 'BEGIN { printf "%.2f", j / b }')
ratio_tx=$(awk -v j="${result[junction.rps]}" -v b="${result[full_tx.rps]}" 'BEGIN { printf "%.2f", j / b }')
echo
echo "junction/baseline = $ratio, junction/full_tx = $ratio_tx"
verdict=PASS
((result[junction.errors] == 0)) || { echo "  FAIL  ${result[junction.errors]} failed requests"; verdict=FAIL; }
echo "$verdict"
[[ $verdict == PASS ]]
