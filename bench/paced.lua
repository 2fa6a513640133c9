-- wrk script: POSTs $BODY_FILE as JSON (with $AUTH as the Authorization header, when set),
-- each connection pausing $PAUSE_MS between its requests: with C connections the rate is about
-- C * 1000 / (PAUSE_MS + latency) per second, the same for every target of a run.
local file = assert(io.open(assert(os.getenv("BODY_FILE"), "BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth then
    wrk.headers["Authorization"] = auth
end
local pause = tonumber(os.getenv("PAUSE_MS") or "10")
function delay()
    return pause
end
