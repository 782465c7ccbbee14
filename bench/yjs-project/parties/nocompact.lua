-- the yjs party with compaction only when the last client leaves (as
-- y-partykit's snapshot mode): bench/yjs.mjs measures the stored log before it
return require("luaparty.yjs").party({ compactUpdates = 1e12, compactBytes = 1e15 })
