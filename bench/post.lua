-- wrk script: every request POSTs one CRM deal as JSON.
-- The deal file comes from $DEAL (bench/run.sh sets it), else ../shared/bench/deal.json.
local path = os.getenv("DEAL") or "../shared/bench/deal.json"
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
-- The layered run ($API_KEY set) authenticates like a partner would.
local key = os.getenv("API_KEY")
if key then
    wrk.headers["x-api-key"] = key
end
