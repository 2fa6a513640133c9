#!/usr/bin/env bash
# The admin console with a big history: 200 routes and 100,000 dead letters against a small
# project (1 route, no dead letter) in the same run, page by page. Each page is asked 20
# times; the median and the slowest time are shown. See bench/README.md.
#
#   bench/console.sh [--routes 200] [--dead-letters 100000]
set -euo pipefail

routes=200
dead=100000
while (($#)); do
    case $1 in
        --routes) routes=${2:?}; shift 2 ;;
        --dead-letters) dead=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/junction-console.XXXXXX")
pids=()
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib.sh
source bench/lib.sh
token=console-bench-admin-token

cargo build --release -p junction
bin=target/release/junction

# project DIR N: N routes that answer at once.
project() {
    mkdir -p "$1/routes"
    printf 'routes: [routes/]\nreload: { watch: false }\nadmin: { listen: 127.0.0.1:9090, token: %s }\n' "$token" >"$1/junction.yaml"
    for i in $(seq 1 "$2"); do
        printf 'route: r%03d\nfrom: { http: { method: POST, path: /r%03d, auth: none } }\nsteps:\n  - transform: { script: "body" }\n' "$i" "$i" >"$1/routes/r$i.yaml"
    done
}

# run NAME ROUTES DEAD_LETTERS ADMIN_ADDR: starts a project, fills its store, times the pages.
run() {
    local name=$1 n=$2 d=$3 admin=$4 dir=$work/$1
    project "$dir" "$n"
    start "$name" "$admin" "$work/$name.log" env JUNCTION_LISTEN=127.0.0.1:0 JUNCTION_ADMIN_LISTEN="$admin" \
        JUNCTION_STORE="sqlite://$dir/junction.db" JUNCTION_SIMULATORS=off "$bin" run "$dir"
    local pid=$started_pid
    # Dead letters straight into the store (ids sort by time, as uuid v7 do).
    python3 - "$dir/junction.db" "$d" "$n" <<'PY'
import json, sqlite3, sys, time
db, count, routes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = sqlite3.connect(db, timeout=30)
now = int(time.time() * 1000)
rows = []
for i in range(count):
    route = "r%03d" % (i % routes + 1)
    msg = json.dumps({"id": "m%08d" % i, "headers": {}, "body": {"n": i, "deal": "D-%d" % i}, "meta": {"route": route}})
    rows.append(("%016x-0000-7000-8000-000000000000" % (now * 1000 + i), route, "1:request",
                 "billing answered 503 (attempt 3) for deal D-%d" % i, 3, msg, now - count + i, None))
con.executemany("INSERT INTO dead_letters (id, route, step, error, attempts, message, created_at, replayed_at) VALUES (?,?,?,?,?,?,?,?)", rows)
con.commit()
PY
    local jar=$work/$name.cookies
    curl -sS -c "$jar" -o /dev/null --data-urlencode "password=$token" --data-urlencode user= "http://$admin/console/login"
    local oldest
    oldest=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT id FROM dead_letters ORDER BY id LIMIT 1 OFFSET 50').fetchone()[0] if $d else '')" "$dir/junction.db")
    for page in /console/overview /console/routes/r001 "/console/dead-letters" "/console/dead-letters?error=D-99999" \
        "/console/dead-letters?before=$oldest" /console/audit /console/topology; do
        local times=()
        for _ in $(seq 1 20); do
            times+=("$(curl -sS -b "$jar" -o /dev/null -w '%{http_code} %{time_total}' "http://$admin$page")")
        done
        printf '%s\n' "${times[@]}" | awk -v name="$name" -v page="$page" '
            $1 != 200 { bad++ } { t[NR] = $2 * 1000 }
            END { n = asort(t); printf "%-6s %-44s p50 %7.1f ms  max %7.1f ms%s\n", name, page, t[int((n + 1) / 2)], t[n], bad ? "  (" bad " not 200)" : "" }'
    done
    printf '%-6s RSS after: %s\n' "$name" "$(hwm "$pid")"
}

echo "small: 1 route, no dead letter; big: $routes routes, $dead dead letters (SQLite store)"
run small 1 0 127.0.0.1:19190
run big "$routes" "$dead" 127.0.0.1:19191
