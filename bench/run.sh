#!/usr/bin/env bash
# Junction vs a hand-written hyper handler on the same work: POST a CRM deal, validate it,
# map it to the master deal, reply. See bench/README.md.
#
#   bench/run.sh [--duration 10s] [--connections 32] [--deal FILE]
#
# BENCH_ONLY_BASELINE=1 measures the baseline alone (no Junction build, no comparison).
set -euo pipefail

duration=10s
connections=32
deal=${DEAL:-../shared/bench/deal.json}
while (($#)); do
    case $1 in
        --duration) duration=${2:?--duration needs a value}; shift 2 ;;
        --connections) connections=${2:?--connections needs a value}; shift 2 ;;
        --deal) deal=${2:?--deal needs a file}; shift 2 ;;
        -h | --help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
only_baseline=${BENCH_ONLY_BASELINE:-0}
[[ -f $deal ]] || { echo "no deal file at $deal (run from the repo root, or pass --deal)" >&2; exit 2; }
deal=$(realpath "$deal")
export DEAL=$deal

baseline_addr=127.0.0.1:18081
junction_addr=127.0.0.1:18080
layered_addr=127.0.0.1:18082
min_layered_ratio=0.80
recorded_addr=127.0.0.1:18083
path=/api/deals/preview
max_p99_ms=5
min_ratio=0.50

work=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench.XXXXXX")
pids=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source bench/lib.sh

# check NAME URL: the deal must get a 200 with a JSON body, kept in $work/NAME.json.
check() {
    local code
    code=$(curl -sS -o "$work/$1.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        ${API_KEY:+-H "x-api-key: $API_KEY"} --data-binary @"$deal" "$2") || die "$1: curl failed on $2"
    [[ $code == 200 ]] || die "$1 answered $code on $2: $(head -c 500 "$work/$1.json")"
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$work/$1.json" ||
        die "$1 did not answer JSON: $(head -c 500 "$work/$1.json")"
}

# Same keys, values and number kinds (1 vs 1.0 differ), whatever the key order.
same_json() {
    python3 - "$@" <<'PY'
import json, sys
a, b = (json.dumps(json.load(open(p)), sort_keys=True) for p in sys.argv[1:])
if a != b:
    print(f"baseline: {a}\njunction: {b}", file=sys.stderr)
    sys.exit(1)
PY
}

declare -A result # "<target>.<rps|p50|p99|errors>", latencies in ms

# measure NAME URL: warms up, runs wrk, fills result[NAME.*].
measure() {
    local name=$1 url=$2 out="$work/$1.wrk"
    wrk -t1 -c"$connections" -d2s -s bench/post.lua "$url" >/dev/null
    wrk -t1 -c"$connections" -d"$duration" --latency -s bench/post.lua "$url" >"$out"
    local rps p50 p99 errors
    read -r rps p50 p99 errors < <(wrk_stats "$out")
    [[ -n $rps && -n $p99 ]] || { cat "$out" >&2; die "$name: could not read the wrk output"; }
    result[$name.rps]=$rps
    result[$name.p50]=$p50
    result[$name.p99]=$p99
    result[$name.errors]=$errors
}

ensure_wrk
packages=(-p junction-bench-baseline)
((only_baseline)) || packages+=(-p junction)
cargo build --release "${packages[@]}"

start baseline "$baseline_addr" "$work/baseline.log" target/release/junction-bench-baseline "$baseline_addr"
baseline_pid=$started_pid
check baseline "http://$baseline_addr$path"
if ! ((only_baseline)); then
    start junction "$junction_addr" "$work/junction.log" env JUNCTION_LISTEN="$junction_addr" \
        JUNCTION_ADMIN_LISTEN=127.0.0.1:0 JUNCTION_STORE="sqlite://$work/bench.db" MASTERDEAL_DATABASE="sqlite://$work/masterdeal.db" JUNCTION_SIMULATORS=off target/release/junction run .
    junction_pid=$started_pid
    check junction "http://$junction_addr$path"
    same_json "$work/baseline.json" "$work/junction.json" ||
        die "Junction and the baseline answer deal.json differently"
    # The same route behind the gateway's layers: an api_key, a rate limit that never
    # triggers, and every request audited.
    layered=$work/layered
    mkdir -p "$layered"
    cp -r junction.yaml prompts.lock routes transforms schemas prompts "$layered/"
    key_hash=$(printf %s bench-api-key-0123 | sha256sum | cut -d' ' -f1)
    sed -i "s/^auth:$/auth:\n  bench:\n    api_key: { keys: [{ id: bench, sha256: \"$key_hash\" }] }/" "$layered/junction.yaml"
    sed -i 's/^    auth: none$/    auth: bench\n    rate_limit: { per_second: 10000000, burst: 10000000 }/' "$layered/routes/gateway/crm-deal-preview.yaml"
    start layered "$layered_addr" "$work/layered.log" env JUNCTION_LISTEN="$layered_addr" \
        JUNCTION_ADMIN_LISTEN=127.0.0.1:0 JUNCTION_STORE="sqlite://$work/layered.db" MASTERDEAL_DATABASE="sqlite://$work/layered-masterdeal.db" JUNCTION_SIMULATORS=off target/release/junction run "$layered"
    layered_pid=$started_pid
    API_KEY=bench-api-key-0123 check layered "http://$layered_addr$path"
    [[ $(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$deal" "http://$layered_addr$path") == 401 ]] ||
        die "the layered route answers without its api key"
    # The same route recording every message's steps (provenance on; the console's message
    # provenance): what recording costs. The plain target above has it off, as by default.
    recorded=$work/recorded
    mkdir -p "$recorded"
    cp -r junction.yaml prompts.lock routes transforms schemas prompts "$recorded/"
    sed -i 's/^route: crm-deal-preview$/route: crm-deal-preview\nprovenance: { record: true, key: body.id }/' "$recorded/routes/gateway/crm-deal-preview.yaml"
    grep -q '^provenance: { record: true' "$recorded/routes/gateway/crm-deal-preview.yaml" || die "could not switch provenance on"
    start recorded "$recorded_addr" "$work/recorded.log" env JUNCTION_LISTEN="$recorded_addr" \
        JUNCTION_ADMIN_LISTEN=127.0.0.1:0 JUNCTION_STORE="sqlite://$work/recorded.db" MASTERDEAL_DATABASE="sqlite://$work/recorded-masterdeal.db" JUNCTION_SIMULATORS=off target/release/junction run "$recorded"
    recorded_pid=$started_pid
    check recorded "http://$recorded_addr$path"
fi

echo "wrk -t1 -c$connections -d$duration, $(nproc) cores, deal: $deal"
measure baseline "http://$baseline_addr$path"
if ! ((only_baseline)); then
    measure junction "http://$junction_addr$path"
    export API_KEY=bench-api-key-0123
    measure layered "http://$layered_addr$path"
    unset API_KEY
    measure recorded "http://$recorded_addr$path"
fi

row_of() { # row_of NAME PID
    row "$1" "${result[$1.rps]}" "${result[$1.p50]}" "${result[$1.p99]}" "${result[$1.errors]}" "$(hwm "$2")"
}
row target req/s p50_ms p99_ms errors max_rss
row_of baseline "$baseline_pid"
if ((only_baseline)); then
    echo "(BENCH_ONLY_BASELINE=1: Junction not measured)"
    exit 0
fi
row_of junction "$junction_pid"
row_of layered "$layered_pid"
row_of recorded "$recorded_pid"

verdict=PASS
judge() { # judge LABEL OK
    if (($2)); then echo "  PASS  $1"; else echo "  FAIL  $1"; verdict=FAIL; fi
}
jrps=${result[junction.rps]} brps=${result[baseline.rps]}
jp99=${result[junction.p99]} jerrors=${result[junction.errors]}
echo
judge "throughput junction/baseline = $(awk -v j="$jrps" -v b="$brps" 'BEGIN { printf "%.2f", j / b }') (target ≥ $min_ratio)" \
    "$(awk -v j="$jrps" -v b="$brps" -v m="$min_ratio" 'BEGIN { print (j / b >= m) }')"
judge "junction p99 = $jp99 ms (target < $max_p99_ms ms)" \
    "$(awk -v p="$jp99" -v m="$max_p99_ms" 'BEGIN { print (p < m) }')"
judge "junction errors, non-2xx and socket = $jerrors (target 0)" "$((jerrors == 0))"
lrps=${result[layered.rps]} lerrors=${result[layered.errors]}
judge "with api_key + rate limit + audit: layered/junction = $(awk -v l="$lrps" -v j="$jrps" 'BEGIN { printf "%.2f", l / j }') (target ≥ $min_layered_ratio)" \
    "$(awk -v l="$lrps" -v j="$jrps" -v m="$min_layered_ratio" 'BEGIN { print (l / j >= m) }')"
judge "layered errors, non-2xx and socket = $lerrors (target 0)" "$((lerrors == 0))"
rrps=${result[recorded.rps]} rerrors=${result[recorded.errors]}
echo "  (info) recording every message's steps: recorded/junction = $(awk -v r="$rrps" -v j="$jrps" 'BEGIN { printf "%.2f", r / j }')"
judge "recorded errors, non-2xx and socket = $rerrors (target 0)" "$((rerrors == 0))"
echo "$verdict"
[[ $verdict == PASS ]]
