-- luaparty.hooks: a party's static hooks (onBeforeConnect, onBeforeRequest,
-- onFetch, onCron), which run in its lobby (room id ""); loaded only there.
return function(shared)
  local Request, Response = shared.Request, require("luaparty").Response
  local H = {}

  --- Which static hooks the party defines, as the C bit set PARTY_HAS_*.
  function H.hooks()
    local bits = 0
    if shared.class.onBeforeConnect then bits = bits + 1 end
    if shared.class.onBeforeRequest then bits = bits + 2 end
    if shared.class.onFetch then bits = bits + 4 end
    if shared.class.onCron then bits = bits + 8 end
    if shared.class.onSocket then bits = bits + 16 end
    return bits
  end

  local hook_names = { [0] = "onBeforeConnect", [1] = "onBeforeRequest", [2] = "onFetch", [3] = "onCron" }

  --- A static hook, run in the party's lobby before any room is touched:
  --- class.onBeforeConnect(req, lobby) / onBeforeRequest(req, lobby) /
  --- onFetch(req, lobby). Returns "pass", "request", headers or
  --- "response", status, headers, body.
  function H.hook(kind, req, room_id) -- req has the Request metatable (src/lua_request.c)
    local name = hook_names[kind]
    local lobby = shared.lobby_of({ id = (name ~= "onFetch" and name ~= "onCron") and room_id or nil })
    if name == "onCron" then
      shared.class.onCron({ name = room_id, cron = req.headers["x-cron"], scheduledTime = os.time() * 1000 }, lobby)
      return "pass"
    end
    local result = shared.class[name](req, lobby)
    if result == nil then return "pass" end
    if type(result) == "string" then result = Response.new(result) end
    if Response.is(result) then return "response", result.status, result.headers, result.body end
    if getmetatable(result) == Request then return "request", result.headers end
    error(name .. " must return nil, the request, or a Response (got " .. type(result) .. ")", 0)
  end

  return H
end
