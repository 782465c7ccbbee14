-- a project module, required by a party and by a test
local M = {}
function M.shout(s) return s:upper() .. "!" end
return M
