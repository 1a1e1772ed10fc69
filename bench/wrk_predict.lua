-- wrk script: POST /predict with a JSON body for a random group on every request.
-- Usage: wrk -t1 -c4 -d30s --latency -s bench/wrk_predict.lua URL -- MEMBERS LENGTH FIRST LAST [PATH]
--   MEMBERS  group size (the requesting user plus MEMBERS-1 others), distinct users
--   LENGTH   playlist_length
--   FIRST..LAST  range of user ids to draw from (the demo data: 101..1200)
--   PATH     endpoint, default /predict
-- Why random groups: the same body every time would measure one cached A/B lookup and one
-- group, not the service. Each wrk thread seeds its own generator, so runs are repeatable.

local members, length, first, last, path = 6, 20, 101, 1200, "/predict"
local statuses = {}
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  members = tonumber(args[1] or members)
  length = tonumber(args[2] or length)
  first = tonumber(args[3] or first)
  last = tonumber(args[4] or last)
  path = args[5] or path
  math.randomseed(1000 + (id or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
  counts = {}
end

local function group()
  local picked, out = {}, {}
  while #out < members do
    local u = math.random(first, last)
    if not picked[u] then
      picked[u] = true
      out[#out + 1] = u
    end
  end
  return out
end

function request()
  local g = group()
  local others = {}
  for i = 2, #g do others[#others + 1] = tostring(g[i]) end
  local body = string.format('{"user_id": %d, "other_users": [%s], "playlist_length": %d}',
                             g[1], table.concat(others, ", "), length)
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, n in pairs(c or {}) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do parts[#parts + 1] = string.format('"%d": %d', status, n) end
  io.write(string.format('STATUS_COUNTS {%s}\n', table.concat(parts, ", ")))
  io.write(string.format('LATENCY_US p50=%d p90=%d p99=%d max=%d\n',
                         latency:percentile(50), latency:percentile(90),
                         latency:percentile(99), latency.max))
end
