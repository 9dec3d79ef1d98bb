-- wrk script for the ingest benchmark: POSTs pre-signed webhook deliveries (benches/gen_requests.py).
--
-- Environment:
--   BENCH_REQUESTS  file prefix: thread i reads "<prefix>.<i>.tsv" (lines `<hex signature>\t<body>`)
--   BENCH_THREADS   the -t given to wrk (setup() cannot know it otherwise; it must match the files)
--
-- Each thread reads its own file, so threads never send the same id. Lines are read as requests are made
-- (buffered reads, no preload): nothing to load before the run, which matters because wrk starts thread 0
-- before it sets up thread 1, so a slow init would let thread 0 run alone, uncounted in the duration.
-- At the end of its file a thread starts over from the top and counts a wrap: every request after that is
-- a repeat id (hooklake answers it 200 as a duplicate, stores nothing). done() reports the wraps.
--
-- done() prints one line `BENCH_JSON {...}` with the run's figures, latencies in microseconds.

local prefix = os.getenv("BENCH_REQUESTS") or error("BENCH_REQUESTS is not set")
local threads_n = tonumber(os.getenv("BENCH_THREADS") or "") or error("BENCH_THREADS is not set")

-- Main state: hand each thread its index and keep the thread objects for done().
local threads = {}
function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

-- Thread state from here on. `wraps` and `sent` are globals because done() reads them with thread:get.
local file, head
wraps, sent = 0, 0

function init(args)
   if index >= threads_n then
      error("wrk runs more threads than BENCH_THREADS=" .. threads_n)
   end
   local path = prefix .. "." .. index .. ".tsv"
   file = io.open(path, "r") or error("cannot open " .. path)
   -- Everything before the signature is the same for every request. wrk.headers.Host is "127.0.0.1:PORT",
   -- set by wrk from the URL; wrk.path is the URL's path.
   head = "POST " .. wrk.path .. " HTTP/1.1\r\n"
      .. "Host: " .. wrk.headers["Host"] .. "\r\n"
      .. "Content-Type: application/json\r\n"
      .. "Webhook-Signatures: "
   wraps = 0
   sent = 0
end

function request()
   local line = file:read("*l")
   if line == nil then
      wraps = wraps + 1
      file:seek("set", 0)
      line = file:read("*l") or error("empty request file for thread " .. index)
   end
   sent = sent + 1
   -- The signature is always 64 hex digits, then a tab.
   local body = line:sub(66)
   return head .. line:sub(1, 64) .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

-- No response() function on purpose: defining one makes wrk hand every response to Lua, which slows the client.

local function json_escape(s)
   return (tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

function done(summary, latency, requests)
   local wraps_total, made = 0, 0
   for _, t in ipairs(threads) do
      wraps_total = wraps_total + (t:get("wraps") or 0)
      made = made + (t:get("sent") or 0)
   end
   local e = summary.errors
   local fields = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
         e.connect, e.read, e.write, e.status, e.timeout),
      string.format('"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}',
         latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
         latency:percentile(99.9), latency.max),
      string.format('"requests_made":%d', made),
      string.format('"wraps":%d', wraps_total),
      string.format('"threads":%d', #threads),
      string.format('"requests_file":"%s"', json_escape(prefix)),
   }
   io.write("BENCH_JSON {" .. table.concat(fields, ",") .. "}\n")
end
