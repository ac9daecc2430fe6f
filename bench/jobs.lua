-- wrk script for the gateway's jobs endpoints.
--   wrk ... -s jobs.lua URL -- post '<json body>'     POST /api/v1/jobs with that body
--   wrk ... -s jobs.lua URL -- get <id> [<id> ...]    GET /api/v1/jobs/<id>, ids in turn
-- done() prints one line "BENCH_JSON {...}" that bench/http_load.py parses.

local mode = "get"
local body = nil
local ids = {}
local counter = 0

function init(args)
  mode = args[1]
  if mode == "post" then
    body = args[2]
  else
    for i = 2, #args do
      ids[#ids + 1] = args[i]
    end
  end
end

function request()
  if mode == "post" then
    return wrk.format("POST", "/api/v1/jobs", { ["Content-Type"] = "application/json" }, body)
  end
  counter = counter + 1
  return wrk.format("GET", "/api/v1/jobs/" .. ids[(counter % #ids) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
