-- wrk script for bench/run.sh's scaling section: spreads HTTP requests over
-- K rooms of the "http" party, /parties/http/r-0 .. /parties/http/r-(K-1).
--
--   wrk -t1 -c50 -d5s -s bench/wrk-rooms.lua http://127.0.0.1:PORT -- K [PREFIX]
--
-- Requests take the rooms in turn (request n goes to room n mod K), so each
-- keep-alive connection visits many rooms. With several luaparty workers a
-- request whose room lives on another worker than the connection's makes the
-- connection move there (an idle keep-alive connection follows its room), so
-- this also measures that hand-over. K defaults to 64, PREFIX to
-- /parties/http/r-.
local K, prefix, n = 64, "/parties/http/r-", 0
local reqs = {}

function init(args)
  K = tonumber(args[1]) or K
  prefix = args[2] or prefix
  for i = 0, K - 1 do
    reqs[i] = wrk.format("GET", prefix .. i)
  end
end

function request()
  local r = reqs[n % K]
  n = n + 1
  return r
end
