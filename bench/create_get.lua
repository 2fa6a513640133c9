-- wrk script for bench/masterdeal.sh: a round trip is POST /deals (a new deal) then GET
-- /deals/{id} of the id in its answer. The connections of a thread share one queue of
-- created ids: a connection GETs one when there is one, else creates the next deal.
local api = os.getenv("API_PREFIX") or "/api/v1"
local headers = {
    ["Content-Type"] = "application/json",
    ["x-api-key"] = os.getenv("API_KEY") or "dev-partner-key-change-me",
}
local template = [[{"external_id":"crm:B-%s-%d","name":"Bench deal","owner":"bench",]] ..
    [["budget":"1000000.00","currency":"RUB","period":{"from":"2026-03-01","to":"2026-05-31"},]] ..
    [["advertiser":{"name":"Romashka LLC","inn":"7707083893","kpp":"770701001"}}]]

local threads = {}

function setup(thread)
    thread:set("token", string.format("%d%d", os.time(), #threads))
    table.insert(threads, thread)
end

function init(args)
    created, fetched, failed, sent = 0, 0, 0, 0
    ids, first, last = {}, 1, 0
end

function request()
    if first <= last then
        local id = ids[first]
        ids[first] = nil
        first = first + 1
        return wrk.format("GET", api .. "/deals/" .. id, headers)
    end
    sent = sent + 1
    return wrk.format("POST", api .. "/deals", headers, string.format(template, token, sent))
end

function response(status, _, body)
    if status == 201 then
        created = created + 1
        last = last + 1
        ids[last] = body:match('"id":"([^"]+)"')
    elseif status == 200 then
        fetched = fetched + 1
    else
        failed = failed + 1
    end
end

function done(summary, _, _)
    local c, f, e = 0, 0, 0
    for _, t in ipairs(threads) do
        c, f, e = c + t:get("created"), f + t:get("fetched"), e + t:get("failed")
    end
    local seconds = summary.duration / 1e6
    io.write(string.format("round_trips %d\nround_trips_per_sec %.1f\ncreated %d\nfailed %d\n",
        f, f / seconds, c, e + summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout))
end
