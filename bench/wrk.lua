-- One load script for every row: the runner sets what to send through the environment.
--   BENCH_METHOD, BENCH_PATH (may contain {id}), BENCH_BODY, BENCH_AUTH, BENCH_COOKIE,
--   BENCH_IDS (a file of ids: each thread takes every BENCH_THREADS-th one, in turn),
--   BENCH_OUT (where done() writes the figures as JSON).
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local step = tonumber(os.getenv("BENCH_THREADS") or "1")
local ids = {}
local position = 1

function init(args)
  local file = os.getenv("BENCH_IDS")
  if file then
    for line in io.lines(file) do ids[#ids + 1] = line end
  end
  position = (tid or 0) + 1
  wrk.headers["Content-Type"] = "application/json"
  local auth = os.getenv("BENCH_AUTH")
  if auth then wrk.headers["Authorization"] = auth end
  local cookie = os.getenv("BENCH_COOKIE")
  if cookie then wrk.headers["Cookie"] = cookie end
end

function request()
  local p = path
  if #ids > 0 then
    p = string.gsub(path, "{id}", ids[position])
    position = position + step
    if position > #ids then position = ((tid or 0) % step) + 1 end
  end
  return wrk.format(method, p, nil, body)
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  local e = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max))
  out:close()
end
