-- A project module required by parties/uses.lua (not a party itself).
return { tag = "u1" }
