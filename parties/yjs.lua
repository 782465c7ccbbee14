-- yjs.lua - collaborative documents: a Yjs document per room, synced with
-- unchanged y-partykit and y-websocket clients.
--
-- Reusable party: name it in any project's partykit.json, e.g.
--   "parties": { "yjs": "../../parties/yjs.lua" }
-- and point a provider at it:
--   new YPartyKitProvider("127.0.0.1:1999", "my-doc", ydoc, { party: "yjs" })
--   new WebsocketProvider("ws://127.0.0.1:1999/parties/yjs", "my-doc", ydoc)
--
-- Messages: y-protocols' sync (step 1, step 2, update) and awareness, binary
-- frames (lua/luaparty/yjs.lua has the details). The document is kept in
-- the room's storage (updates appended before they are relayed, merged into
-- one update as the log grows), so it survives restarts.
--
-- A connection is read-only when its upgrade request carries the header
-- x-yjs-read-only (set it in onBeforeConnect after checking who it is; a
-- client that sets it itself only restricts itself).
-- HTTP: GET /parties/yjs/DOC answers the document as one Yjs update
-- (Y.applyUpdate(doc, bytes)); GET /parties/yjs/DOC?info its sizes.
--
-- For other options (gc, onChange, compaction thresholds) make your own
-- party with require("luaparty.yjs").party({...}).
local yjs = require "luaparty.yjs"

return yjs.party({
  readOnly = function(self, conn, ctx)
    return ctx.request.headers["x-yjs-read-only"] ~= nil
  end,
})
