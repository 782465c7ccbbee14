/* dotenv.c - the .env format (see dotenv.h).
 *
 *   # a comment
 *   export API_KEY=abc123      # export is allowed, and a comment after
 *   GREETING="hello\nworld"    # double quotes: \n and \r become newline and CR
 *   RAW='no $ or \n magic'     # single quotes (and backquotes): taken as written
 *   PEM="-----BEGIN KEY-----
 *   ...
 *   -----END KEY-----"         # a quoted value may span lines
 *
 * An unquoted value ends at '#' and loses its surrounding blanks. Where
 * dotenv silently skips a line it cannot read, this says which line: a
 * secret that silently did not load is worse than a start-up error. */
#include "dotenv.h"
#include "buf.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

bool dotenv_valid_key(const char *s, size_t len)
{
    if (!len) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

static bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static int fail(char **err, int line, const char *what)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "line %d: %s", line, what);
    *err = buf_steal(&b);
    return -1;
}

/* A double-quoted value: \n and \r expanded (as dotenv does; nothing else). */
static void unescape(buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == 'n' || s[i + 1] == 'r')) {
            buf_append(out, s[i + 1] == 'n' ? "\n" : "\r", 1);
            i++;
        } else {
            buf_append(out, s + i, 1);
        }
    }
}

int dotenv_parse(const char *text, size_t len, dotenv_fn fn, void *ud, char **err)
{
    const char *p = text, *end = text + len;
    int line = 1;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3; /* a byte-order mark some editors write */
    buf val;
    buf_init(&val);
    while (p < end) {
        while (p < end && blank(*p)) p++;
        if (p == end) break;
        if (*p == '\n' || *p == '#') { /* an empty line or a comment */
            while (p < end && *p != '\n') p++;
            if (p < end) p++, line++;
            continue;
        }
        if ((size_t)(end - p) > 7 && memcmp(p, "export", 6) == 0 && blank(p[6])) {
            p += 6;
            while (p < end && blank(*p)) p++;
        }
        const char *key = p;
        while (p < end && dotenv_valid_key(p, 1)) p++;
        size_t klen = (size_t)(p - key);
        while (p < end && blank(*p)) p++;
        if (!klen || p == end || *p != '=') {
            buf_free(&val);
            return fail(err, line, "expected NAME=VALUE (a name is letters, digits, '_', '.' and '-')");
        }
        p++;
        while (p < end && blank(*p)) p++;
        int first_line = line;
        val.len = 0;
        if (p < end && (*p == '"' || *p == '\'' || *p == '`')) {
            char q = *p++;
            const char *v = p;
            while (p < end && *p != q) {
                if (*p == '\\' && q == '"' && p + 1 < end && p[1] == '"') p++; /* \" does not end it (dotenv) */
                if (*p == '\n') line++;
                p++;
            }
            if (p == end) {
                buf_free(&val);
                char what[200];
                snprintf(what, sizeof what, "the value of %.*s has no closing %c", (int)(klen > 64 ? 64 : klen), key, q);
                return fail(err, first_line, what);
            }
            if (q == '"') unescape(&val, v, (size_t)(p - v));
            else buf_append(&val, v, (size_t)(p - v));
            p++;
            while (p < end && blank(*p)) p++;
            if (p < end && *p != '\n' && *p != '#') {
                buf_free(&val);
                return fail(err, line, "text after the closing quote (a comment starts with '#')");
            }
        } else {
            const char *v = p;
            while (p < end && *p != '\n' && *p != '#') p++;
            const char *ve = p;
            while (ve > v && blank(ve[-1])) ve--;
            buf_append(&val, v, (size_t)(ve - v));
        }
        while (p < end && *p != '\n') p++; /* a comment */
        if (p < end) p++, line++;
        fn(ud, key, klen, val.data ? val.data : "", val.len);
    }
    buf_free(&val);
    return 0;
}
