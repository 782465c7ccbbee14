local t = require "luaparty.test"
t.test("never runs", function() end)
this is not lua
