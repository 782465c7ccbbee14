-- A party with bugs on purpose, for the failing tests of `luaparty test`.
local Main = {}

local function parse(message)
  return message.text:upper() -- a string has no .text: line 5 raises
end

function Main:onMessage(message, sender)
  print("got " .. message)
  sender:send(parse(message))
end

function Main:onRequest(req)
  return "count " .. (self.count or 0)
end

function Main:onClose(conn)
  if conn.id == "grumpy" then error("cannot let " .. conn.id .. " go") end -- line 18
end

return Main
