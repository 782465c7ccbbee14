-- gc off: deleted content stays in the stored document
return require("luaparty.yjs").party({ gc = false })
