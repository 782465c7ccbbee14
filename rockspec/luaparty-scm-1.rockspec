-- luaparty as a LuaRocks package: `luarocks make` in a checkout builds the C
-- core with CMake and installs
--   bin/luaparty                      (the server; deployed to the tree's bin/)
--   share/luaparty/lua/luaparty/*.lua (the Lua runtime, also compiled into the binary)
--   share/luaparty/parties/*.lua      (the reusable parties: presence, chat, connections)
-- into the rock's directory of the tree.
--
--   luarocks make --tree=/opt/luaparty rockspec/luaparty-scm-1.rockspec
--
-- The build needs the Debian packages that scripts/install-deps.sh installs
-- (cmake, pkg-config, libluajit-5.1-dev, libuv1-dev, libsqlite3-dev,
-- libwslay-dev, node-llhttp, lua-cjson-dev, ...). CMake finds LuaJIT through pkg-config, so the
-- Lua that luarocks itself is set up for does not matter for the build; to
-- point luarocks at LuaJIT anyway, add LUA_INCDIR=/usr/include/luajit-2.1
-- LUA=/usr/bin/luajit to the command line.
rockspec_format = "3.0"
package = "luaparty"
version = "scm-1"

source = {
   -- `luarocks make` builds the checkout it runs in; this rockspec is not
   -- fetched from anywhere.
   url = "git+file://.",
}

description = {
   summary = "A PartyKit-style real-time party server: a C core and parties written in Lua",
   detailed = [[
luaparty serves PartyKit-style projects (partykit.json) whose parties are
Lua scripts: rooms, WebSocket connections, HTTP, durable storage, alarms,
crons and static files, on libuv, llhttp, wslay, SQLite and LuaJIT.
]],
   labels = { "server", "websocket", "realtime" },
}

dependencies = {
   "lua >= 5.1",
}

external_dependencies = {
   LIBUV = { header = "uv.h" },
   SQLITE = { header = "sqlite3.h" },
   WSLAY = { header = "wslay/wslay.h" },
}

build = {
   type = "cmake",
   variables = {
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      CMAKE_BUILD_TYPE = "Release",
      LUAPARTY_BENCH = "OFF",
      LUAPARTY_SANITIZE = "OFF",
      LUAPARTY_FUZZ = "OFF",
   },
   copy_directories = {},
}
