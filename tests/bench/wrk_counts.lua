-- wrk script of the wwsfd benchmark (bench_wwsfd.py): one kind of request
-- on every keep-alive connection, and a count of the answers by status, so
-- that the script can tell real successes from fast errors.
--
--   wrk -t2 -c32 -d20s -s wrk_counts.lua https://127.0.0.1:PORT -- MODE [STOP_AFTER]
--
-- MODE:
--   healthz    GET /healthz                      (200 = success)
--   anonymous  POST /api/v1/anonymous, a name and an email as evidence
--   login      POST /api/v1/login as alice       (WRK_LOGIN_USER, WRK_LOGIN_PASSWORD)
--   get        GET $WRK_PATH with Authorization: Bearer $WRK_BEARER (200 = success)
--   entries    POST $WRK_PATH (a portal pool's entries) with Bearer $WRK_BEARER,
--              one new entry sip:w$WRK_TAG<thread>-<n>@$WRK_DOMAIN per request (200 = success)
-- For anonymous and login a success is a 200 whose body carries a token.
-- WRK_CLOSE=1 in the environment: every request says Connection: close, so
-- each one costs a new TCP connection and TLS handshake.
-- STOP_AFTER: each thread stops after that many answers, whatever their
-- status (0 or absent: run for the duration), and then creates the file
-- $WRK_DONE_DIR/thread-N: wrk itself runs until -d, so the caller sends it
-- SIGINT once every thread has stopped.
--
-- At the end one line "WRK-JSON {...}" with the counts, the error codes of
-- the answers that were not 200 ({"error": CODE}), successes and other
-- answers per second of the clock ("timeline": {"EPOCH": [good, other]})
-- and the latency percentiles (microseconds) for the script to read.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local req
local need_token = false
local entries = nil
counts = {}
codes = {}
good_at = {}    -- successes per second (os.time()), for the rate before a failure
bad_at = {}     -- other answers per second
good = 0
bad_body = 0
answers = 0
local stop_after = 0

function init(args)
   local mode = args[1] or "healthz"
   stop_after = tonumber(args[2] or "0") or 0
   local headers = { ["Content-Type"] = "application/json", ["User-Agent"] = "wrk (wwsfd benchmark)" }
   local get_headers = { ["User-Agent"] = "wrk (wwsfd benchmark)" }
   if os.getenv("WRK_CLOSE") == "1" then
      headers["Connection"] = "close"
      get_headers["Connection"] = "close"
   end
   if mode == "healthz" then
      req = wrk.format("GET", "/healthz", get_headers, nil)
   elseif mode == "anonymous" then
      need_token = true
      req = wrk.format("POST", "/api/v1/anonymous", headers,
                       '{"evidence":{"name":"Ann Bench","email":"ann@example.com"}}')
   elseif mode == "login" then
      need_token = true
      local user = os.getenv("WRK_LOGIN_USER") or "alice"
      local password = os.getenv("WRK_LOGIN_PASSWORD") or "alice-secret"
      req = wrk.format("POST", "/api/v1/login", headers,
                       '{"username":"' .. user .. '","password":"' .. password .. '"}')
   elseif mode == "get" then
      get_headers["Authorization"] = "Bearer " .. (os.getenv("WRK_BEARER") or "")
      req = wrk.format("GET", os.getenv("WRK_PATH"), get_headers, nil)
   elseif mode == "entries" then
      headers["Authorization"] = "Bearer " .. (os.getenv("WRK_BEARER") or "")
      entries = { path = os.getenv("WRK_PATH"), domain = os.getenv("WRK_DOMAIN") or "ims.example.com",
                  tag = os.getenv("WRK_TAG") or "", headers = headers, n = 0 }
   else
      error("unknown mode " .. mode)
   end
end

function request()
   if entries then
      entries.n = entries.n + 1
      local name = string.format("w%s%d-%d", entries.tag, id, entries.n)
      return wrk.format("POST", entries.path, entries.headers,
                        string.format('{"entry":[{"impu":"sip:%s@%s","impi":"%s@%s"}]}', name, entries.domain,
                                      name, entries.domain))
   end
   return req
end

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
   answers = answers + 1
   local now = os.time()
   if status == 200 then
      if need_token and not (body and body:find('"token":"ey', 1, true)) then
         bad_body = bad_body + 1
         bad_at[now] = (bad_at[now] or 0) + 1
      else
         good = good + 1
         good_at[now] = (good_at[now] or 0) + 1
      end
   else
      bad_at[now] = (bad_at[now] or 0) + 1
      local code = body and body:match('"error"%s*:%s*"([%w_]+)"') or "none"
      local key = status .. " " .. code
      codes[key] = (codes[key] or 0) + 1
   end
   if stop_after > 0 and answers == stop_after then
      local dir = os.getenv("WRK_DONE_DIR")
      if dir then
         local f = io.open(dir .. "/thread-" .. tostring(id), "w")
         if f then f:close() end
      end
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local total = {}
   local errs = {}
   local gt, bt = {}, {}
   local g, b = 0, 0
   for _, t in ipairs(threads) do
      local c = t:get("counts")
      for k, v in pairs(c) do
         total[k] = (total[k] or 0) + v
      end
      for k, v in pairs(t:get("codes")) do
         errs[k] = (errs[k] or 0) + v
      end
      for k, v in pairs(t:get("good_at")) do
         gt[k] = (gt[k] or 0) + v
      end
      for k, v in pairs(t:get("bad_at")) do
         bt[k] = (bt[k] or 0) + v
      end
      g = g + t:get("good")
      b = b + t:get("bad_body")
   end
   local parts = {}
   for k, v in pairs(total) do
      table.insert(parts, string.format('"%d": %d', k, v))
   end
   local eparts = {}
   for k, v in pairs(errs) do
      table.insert(eparts, string.format('"%s": %d', k, v))
   end
   local tl = {}
   for k, v in pairs(gt) do
      table.insert(tl, string.format('"%d": [%d, %d]', k, v, bt[k] or 0))
   end
   for k, v in pairs(bt) do
      if not gt[k] then
         table.insert(tl, string.format('"%d": [0, %d]', k, v))
      end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK-JSON {"requests": %d, "duration_us": %d, "bytes": %d, "good": %d, "bad_body": %d, ' ..
      '"statuses": {%s}, "codes": {%s}, "timeline": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
      summary.requests, summary.duration, summary.bytes, g, b, table.concat(parts, ", "), table.concat(eparts, ", "), table.concat(tl, ", "),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
