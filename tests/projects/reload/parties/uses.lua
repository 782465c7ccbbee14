-- Replies with the tag of the project module parties/util.lua.
local util = require "parties.util"
local Uses = {}

function Uses:onMessage(message, sender)
  sender:send(util.tag .. ":" .. tostring(message))
end

function Uses:onRequest(req)
  return util.tag
end

return Uses
