-- compacts the stored log every 20 updates (tests of compaction)
return require("luaparty.yjs").party({ compactUpdates = 20 })
