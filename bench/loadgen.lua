-- wrk script: send each pre-generated, pre-signed delivery exactly once.
--
-- wrk -s loadgen.lua URL -- NTHREADS DELIVERIES_TSV DONE_DIR
-- Each line of the TSV is "svix-id<TAB>svix-timestamp<TAB>svix-signature<TAB>body". Thread k
-- sends lines k, k+NTHREADS, ... When a thread has all its answers it writes DONE_DIR/<k> and
-- parks its connections (delay()); run.py then stops wrk with SIGINT, which makes wrk print its
-- summary and call done(), where exact figures are printed from monotonic clocks.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } cs_timespec;
int clock_gettime(int clk_id, cs_timespec *tp);
]]
local function now()
  local t = ffi.new("cs_timespec")
  ffi.C.clock_gettime(1, t)
  return tonumber(t.tv_sec) + tonumber(t.tv_nsec) / 1e9
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(args[1])
  donedir = args[3]
  reqs = {}
  sent, reserved, got, ok, bad, first, last = 0, 0, 0, 0, 0, 0, 0
  local i = 0
  for line in io.lines(args[2]) do
    if i % nthreads == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/api/webhooks/clerk", {
        ["svix-id"] = id, ["svix-timestamp"] = ts, ["svix-signature"] = sig,
        ["Content-Type"] = "application/json",
      }, body)
    end
    i = i + 1
  end
  total = #reqs
  -- wrk calls request() once on the first thread to inspect it, before any connection exists;
  -- that call must not use up a delivery.
  inspecting = (tid == 0)
end

function request()
  if inspecting then
    inspecting = false
    return reqs[1]
  end
  if sent == 0 then first = now() end
  sent = sent + 1
  return reqs[math.min(sent, total)]
end

-- wrk asks delay() before every request() of a connection: a slot is reserved here, so no
-- delivery is sent twice and a connection with nothing left to send parks for an hour.
function delay()
  if reserved >= total then return 3600000 end
  reserved = reserved + 1
  return 0
end

function response(status, headers, body)
  got = got + 1
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
  if got == total then
    last = now()
    local f = io.open(donedir .. "/" .. tid, "w")
    f:write("done\n")
    f:close()
  end
end

function done(summary, latency, requests)
  local t0, t1, n, nok, nbad = math.huge, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    local f, l = t:get("first"), t:get("last")
    if f > 0 and f < t0 then t0 = f end
    if l > t1 then t1 = l end
    n = n + t:get("got")
    nok = nok + t:get("ok")
    nbad = nbad + t:get("bad")
  end
  io.write(string.format(
    "RESULT responses=%d ok=%d errors=%d seconds=%.4f p50_us=%d p99_us=%d max_us=%d socket_errors=%d\n",
    n, nok, nbad, t1 - t0, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
