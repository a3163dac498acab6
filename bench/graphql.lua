-- wrk script: POST a random GraphQL body from a file (one JSON document per line), count
-- GraphQL errors inside 200 responses, and print a JSON summary with p50/p95/p99.
--   wrk -s bench/graphql.lua http://127.0.0.1:8101/graphql -- bodies.jsonl
local bodies = {}
local threads = {}
local graphql_errors = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(bodies, line) end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local body = bodies[math.random(#bodies)]
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 200 and body:find('"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

function done(summary, latency, requests)
  local gql = 0
  for _, thread in ipairs(threads) do
    gql = gql + (thread:get("graphql_errors") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,"graphql_errors":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status, gql,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
