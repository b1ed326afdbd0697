-- wrk script for POST /api/v1/auth/refresh.
--
-- Refresh tokens are single use, so each request presents a token no request
-- has used: every thread starts from its own slice of a pool of tokens (one per
-- session, logged in beforehand) and puts each response's new token back.
-- A connection has one request in flight, so a pool larger than the number of
-- connections never runs dry while the answers are 200.

local pool_file = os.getenv("TOKENS_FILE")
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local threads = tonumber(os.getenv("WRK_THREADS") or "1")
  pool = {}
  local i = 0
  for line in io.lines(pool_file) do
    if i % threads == id then
      table.insert(pool, line)
    end
    i = i + 1
  end
  non200 = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local token = table.remove(pool) or "exhausted"
  return wrk.format(nil, "/api/v1/auth/refresh", nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  if status == 200 then
    local token = string.match(body, '"refresh_token":"([^"]+)"')
    if token then
      table.insert(pool, token)
    end
  else
    non200 = non200 + 1
  end
end
