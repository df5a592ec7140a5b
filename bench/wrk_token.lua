-- wrk script for bench/webhooks.py: replays pre-signed Twilio webhook POSTs, each
-- delivery with a fresh I-Twilio-Idempotency-Token (the signature does not cover
-- headers, so one signed body serves many deliveries).
--
--   wrk -t2 -c32 -d10s -s bench/wrk_token.lua http://127.0.0.1:PORT/ -- REQUESTS PREFIX 2
--
-- REQUESTS is a file of lines "path<TAB>X-Twilio-Signature<TAB>form body", one per call.
-- Thread t of THREADS takes the lines t, t+THREADS, ... and sends them in turn, so no
-- two threads post for the same call and, with at least twice as many lines as
-- connections, a call has one webhook in flight at a time, as with a real caller.
-- PREFIX makes the tokens unique per run: PREFIX-<thread>-<n>.
-- done() prints one line "WRK_JSON {...}" (latencies in microseconds) for the harness.

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("tid", thread_count)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "r"), "cannot open the requests file")
   prefix = args[2] or "bench"
   local thread_total = tonumber(args[3]) or 1
   local all = {}
   for line in file:lines() do
      local path, signature, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
      if path then
         table.insert(all, { path = path, signature = signature, body = body })
      end
   end
   deliveries = {}
   for index, delivery in ipairs(all) do
      if (index - 1) % thread_total == (tid - 1) % thread_total then
         table.insert(deliveries, delivery)
      end
   end
   if #deliveries == 0 then
      deliveries = all
   end
   file:close()
   assert(#deliveries > 0, "no requests in the requests file")
   sent = 0
   ok = 0
   not_ok = 0
end

function request()
   sent = sent + 1
   local delivery = deliveries[sent % #deliveries + 1]
   return wrk.format("POST", delivery.path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["User-Agent"] = "TwilioProxy/1.1",
      ["X-Twilio-Signature"] = delivery.signature,
      ["I-Twilio-Idempotency-Token"] = prefix .. "-" .. tid .. "-" .. sent,
   }, delivery.body)
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      not_ok = not_ok + 1
   end
end

function done(summary, latency, requests)
   local ok_total, not_ok_total, sent_total = 0, 0, 0
   for _, thread in ipairs(threads) do
      ok_total = ok_total + thread:get("ok")
      not_ok_total = not_ok_total + thread:get("not_ok")
      sent_total = sent_total + thread:get("sent")
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"sent":%d,'
         .. '"status_2xx":%d,"status_other":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,'
         .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.duration, summary.requests, summary.bytes, sent_total,
      ok_total, not_ok_total,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency.stdev,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
