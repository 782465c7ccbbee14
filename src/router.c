/* router.c - request target -> (party, room). */
#include "router.h"
#include "util.h"

#include <string.h>

/* Length of the path part (up to '?' or '#'). */
static size_t path_len(const char *t)
{
    return strcspn(t, "?#");
}

static size_t segment(const char *p, size_t left)
{
    size_t n = 0;
    while (n < left && p[n] != '/') n++;
    return n;
}

void route_parse(const config *cfg, const char *target, route *out)
{
    /* not a memset of the whole struct: this runs per request, and the
     * names are NUL-terminated where they are copied */
    out->kind = ROUTE_NOT_FOUND;
    out->party = NULL;
    out->name[0] = out->room[0] = '\0';
    /* absolute-form (GET http://host/path): route on the path */
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        const char *slash = strchr(strstr(target, "//") + 2, '/');
        target = slash ? slash : "/";
    }
    size_t len = path_len(target);
    const char *p = target, *end = target + len;
    const char *name;
    size_t nlen;
    if (len > 9 && strncmp(p, "/parties/", 9) == 0) {
        p += 9;
        name = p;
        nlen = segment(p, (size_t)(end - p));
        p += nlen;
        if (p >= end || !nlen) return;
        p++; /* the slash */
    } else if (len > 7 && strncmp(p, "/party/", 7) == 0) {
        p += 7;
        name = "main";
        nlen = 4;
    } else {
        return;
    }
    size_t rlen = segment(p, (size_t)(end - p));
    if (!rlen) return;
    if (nlen >= sizeof out->name) {
        out->kind = ROUTE_UNKNOWN_PARTY;
        memcpy(out->name, name, sizeof out->name - 1);
        out->name[sizeof out->name - 1] = '\0';
        return;
    }
    memcpy(out->name, name, nlen);
    out->name[nlen] = '\0';
    out->party = config_party(cfg, name, nlen);
    if (!out->party) {
        out->kind = ROUTE_UNKNOWN_PARTY;
        return;
    }
    if (rlen > ROUTE_MAX_ROOM_ID) {
        out->kind = ROUTE_ID_TOO_LONG;
        return;
    }
    memcpy(out->room, p, rlen);
    out->room[rlen] = '\0';
    out->kind = ROUTE_ROOM;
}

bool query_param(const char *target, const char *name, char *out, size_t cap)
{
    const char *q = strchr(target, '?');
    if (!q) return false;
    size_t nlen = strlen(name);
    for (const char *p = q + 1; *p && *p != '#';) {
        size_t plen = strcspn(p, "&#");
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = plen - nlen - 1;
            if (vlen >= cap) vlen = cap - 1;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = 0;
            url_decode(out, vlen, true);
            return true;
        }
        if (plen == nlen && strncmp(p, name, nlen) == 0) {
            out[0] = 0;
            return true;
        }
        p += plen;
        if (*p == '&') p++;
    }
    return false;
}
