#!/usr/bin/env bash
# What an `llm` step adds: the same chat completion asked of the OpenAI-compatible simulator
# directly, and through a Junction route whose `llm` step renders the prompt package, calls the
# simulator, checks the answer against the package's schema and replies. See bench/README.md,
# "LLM step".
#
#   bench/llm.sh [--duration 10s] [--connections 10] [--pause-ms 10]
#
# About connections * 1000 / (pause + latency) requests per second on each side (1,000/s by
# default); the run fails when the step adds more than 1 ms at p99.
set -euo pipefail

duration=10s
connections=10
pause=10
while (($#)); do
    case $1 in
        --duration) duration=${2:?}; shift 2 ;;
        --connections) connections=${2:?}; shift 2 ;;
        --pause-ms) pause=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
sim_addr=127.0.0.1:18094
junction_addr=127.0.0.1:18095
key=sim-openai-key
max_added_p99_ms=1

work=$(mktemp -d "${TMPDIR:-/tmp}/junction-llm-bench.XXXXXX")
pids=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source bench/lib.sh

ensure_wrk
cargo build --release --quiet -p junction -p junction-simulators

# The project: one route, one llm step, a package with a schema the simulator's `{}` passes.
project=$work/project
mkdir -p "$project/routes" "$project/prompts/plan/1"
cat >"$project/junction.yaml" <<YAML
routes: [routes/]
connectors:
  llm:
    kind: llm
    targets:
      - { provider: openai, base_url: "http://$sim_addr/v1", api_key: "\${SIM_KEY}", model: gpt-4o-mini }
YAML
cat >"$project/routes/plan.yaml" <<'YAML'
route: plan
from: { http: { method: POST, path: /plan, auth: none } }
steps:
  - request: { connector: llm, op: complete, prompt: plan/1 }
YAML
echo 'You are a media planner. Answer with JSON only.' >"$project/prompts/plan/1/system.j2"
echo 'Draft a media plan for {{ input.deal.name }} within {{ input.deal.budget }} RUB.' >"$project/prompts/plan/1/user.j2"
echo '{"type": "object"}' >"$project/prompts/plan/1/schema.json"
printf 'temperature: 0\nmax_tokens: 800\n' >"$project/prompts/plan/1/params.yaml"
export SIM_KEY=$key
line=$({ target/release/junction check "$project" 2>&1 || true; } | grep -o 'plan/1 sha256:[0-9a-f]*' | head -n1)
[[ -n $line ]] || die "junction check did not name the package's lock line"
echo "$line" >"$project/prompts.lock"
target/release/junction check "$project" >/dev/null || die "the bench project does not pass junction check"

# The two requests: the deal to the route, and the very chat request the step sends.
echo '{"deal": {"name": "Весна 2027", "budget": "1500000.00"}}' >"$work/deal.json"
cat >"$work/chat.json" <<'JSON'
{"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are a media planner. Answer with JSON only."}, {"role": "user", "content": "Draft a media plan for Весна 2027 within 1500000.00 RUB."}], "response_format": {"type": "json_schema", "json_schema": {"name": "plan_1", "schema": {"type": "object"}}}, "temperature": 0, "max_completion_tokens": 800}
JSON

start simulator "$sim_addr" "$work/simulator.log" target/release/junction-simulators openai --listen "$sim_addr" --key "$key"
start junction "$junction_addr" "$work/junction.log" env JUNCTION_LISTEN="$junction_addr" JUNCTION_LOG=warn \
    JUNCTION_ADMIN_LISTEN=127.0.0.1:0 JUNCTION_STORE="sqlite://$work/bench.db" target/release/junction run "$project"
code=$(curl -sS -o "$work/check.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$work/deal.json" "http://$junction_addr/plan")
[[ $code == 200 ]] || die "the route answered $code: $(head -c 500 "$work/check.json")"

declare -A result
measure() { # NAME URL BODY [AUTH]
    local out="$work/$1.wrk"
    BODY_FILE=$3 AUTH=${4:-} PAUSE_MS=$pause wrk -t1 -c"$connections" -d2s -s bench/paced.lua "$2" >/dev/null
    BODY_FILE=$3 AUTH=${4:-} PAUSE_MS=$pause wrk -t1 -c"$connections" -d"$duration" --latency -s bench/paced.lua "$2" >"$out"
    local rps p50 p99 errors
    read -r rps p50 p99 errors < <(wrk_stats "$out")
    [[ -n $rps && -n $p99 ]] || { cat "$out" >&2; die "$1: could not read the wrk output"; }
    ((errors == 0)) || { cat "$out" >&2; die "$1: $errors requests failed"; }
    result[$1.rps]=$rps
    result[$1.p50]=$p50
    result[$1.p99]=$p99
}

echo "wrk -t1 -c$connections -d$duration, ${pause} ms between a connection's requests, $(nproc) cores"
measure direct "http://$sim_addr/v1/chat/completions" "$work/chat.json" "Bearer $key"
measure junction "http://$junction_addr/plan" "$work/deal.json"
printf '%-9s %10s %10s %10s\n' target "req/s" "p50_ms" "p99_ms"
for t in direct junction; do
    printf '%-9s %10s %10s %10s\n' "$t" "${result[$t.rps]}" "${result[$t.p50]}" "${result[$t.p99]}"
done
added50=$(awk -v j="${result[junction.p50]}" -v d="${result[direct.p50]}" 'BEGIN { printf "%.2f", j - d }')
added99=$(awk -v j="${result[junction.p99]}" -v d="${result[direct.p99]}" 'BEGIN { printf "%.2f", j - d }')
echo "added by the llm step: p50 ${added50} ms, p99 ${added99} ms (target p99 < ${max_added_p99_ms} ms)"
awk -v a="$added99" -v m="$max_added_p99_ms" 'BEGIN { exit !(a < m) }' && echo "  PASS" || { echo "  FAIL"; exit 1; }
