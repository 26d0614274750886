-- signed.lua: the wrk script of `make bench`. It POSTs signed JSON webhooks
-- to the URL wrk is given and, when wrk stops, prints one line of JSON with
-- what it measured, for inlet-bench to read.
--
--     wrk -t1 -c64 -d5s --timeout 5s -s bench/wrk/signed.lua <webhook URL> -- <bodies file>
--
-- LuaJIT has no HMAC, so inlet-bench signs the bodies beforehand: each line
-- of the bodies file is "<hex HMAC-SHA256 of the body> <body>", the body a
-- single line of JSON. Every request takes the next body of the file, and
-- after the last one the first again, with Content-Type: application/json
-- and X-Hub-Signature-256: sha256=<hex>. No delivery id header is sent:
-- the trigger under test takes delivery ids from headers only, so a body
-- sent twice is two events, not a duplicate.
--
-- The JSON line starts with "inlet-bench-wrk " and holds wrk's summary,
-- latency percentiles in microseconds, the answers read by status code,
-- and how many requests were written: wrk stops with a request in flight
-- on each busy connection, and never reads those answers.

local threads = {}

-- setup runs in wrk's main Lua state, once per thread before it starts;
-- done runs in the same state and reads the threads' counters through
-- thread:get.
function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

-- Each thread's own state: its prepared requests and its counters.
local prepared, count, next_body = {}, 0, 0
sent = 0        -- requests handed to wrk to write
statuses = {}   -- answers read, by status code

function init(args)
   local path = args[1] -- args[0] is the URL, then what follows --
   if not path then
      error("signed.lua: no bodies file; pass it after --")
   end
   for line in io.lines(path) do
      local sig, body = line:match("^(%x+) (.+)$")
      if not sig then
         error("signed.lua: " .. path .. ": line " .. (count + 1) .. " is not <hex> <body>")
      end
      count = count + 1
      prepared[count] = wrk.format("POST", nil, {
         ["Content-Type"] = "application/json",
         ["X-Hub-Signature-256"] = "sha256=" .. sig,
      }, body)
   end
   if count == 0 then
      error("signed.lua: " .. path .. " holds no bodies")
   end
   -- Threads start at different places in the set.
   next_body = (index * 7919) % count
   if index == 0 then
      -- wrk calls the first thread's request() once before starting, to
      -- check what it returns; that request is never sent.
      sent = -1
   end
end

function request()
   next_body = next_body % count + 1
   sent = sent + 1
   return prepared[next_body]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local written, by_status = 0, {}
   for _, t in ipairs(threads) do
      written = written + t:get("sent")
      for code, n in pairs(t:get("statuses")) do
         by_status[code] = (by_status[code] or 0) + n
      end
   end
   local codes = {}
   for code, n in pairs(by_status) do
      codes[#codes + 1] = string.format('"%d":%d', code, n)
   end
   local e = summary.errors
   -- wrk's counters reach Lua as numbers (doubles): %.0f prints them whole.
   io.write(string.format(
      'inlet-bench-wrk {"duration_us":%.0f,"requests":%.0f,"bytes":%.0f,"sent":%.0f,' ..
      '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f},' ..
      '"status":{%s}}\n',
      summary.duration, summary.requests, summary.bytes, written,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      table.concat(codes, ",")))
end
