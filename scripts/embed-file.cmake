# Turns one file into a C byte array, so a text the binary needs (the Redis
# Functions library, lua/redis/luaparty_functions.lua) ships inside it.
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed-file.cmake
# defines  const char NAME[] (NUL-terminated)  and  const size_t NAME_len.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
get_filename_component(src ${IN} NAME)
file(WRITE ${OUT} "/* Generated from ${src} by scripts/embed-file.cmake. Do not edit. */\n"
                  "#include <stddef.h>\n"
                  "extern const char ${NAME}[];\nextern const size_t ${NAME}_len;\n"
                  "const char ${NAME}[] = {${bytes}0};\n"
                  "const size_t ${NAME}_len = ${len};\n")
