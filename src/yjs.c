/* yjs.c - Yjs document updates (the v1 binary format) without a Y.Doc.
 *
 * A Yjs update is a list of structs per client (each a run of clock values:
 * an Item with content, a GC placeholder, or a Skip over a gap), followed by
 * a delete set (per client, ranges of deleted clocks). Integrating structs
 * into a document needs the CRDT; merging, diffing against a state vector
 * and reading a state vector do not: they work on clocks alone, which is
 * what Yjs's own mergeUpdates / diffUpdate / encodeStateVectorFromUpdate do.
 * This file does the same from the format description (read in yjs's
 * src/utils/updates.js, the files in src/structs and lib0's encoding), so a party
 * can keep one merged update per document and answer a sync step 1 with
 * exactly what the peer lacks.
 *
 * Two optional steps make a stored document smaller, both what a Y.Doc
 * itself does before it encodes its state:
 *   gc        the content of deleted items is dropped (an item whose clocks
 *             are all in the delete set keeps only its length), items split
 *             at the delete set's edges as Yjs splits them;
 *   coalesce  a run of one client's items that a Y.Doc would hold as one
 *             item (each continuing the previous one: same right origin,
 *             origin the previous item's last clock, same kind of content,
 *             same deleted state) is written as one item. Two neighbours are
 *             joined only if no other known item has the first one's last
 *             clock as its origin: such an item may sit between them in the
 *             document. A peer that later adds one splits the joined item
 *             at that clock, as it splits any item Yjs wrote.
 *
 * Everything read is checked as Yjs would read it (and strings as valid
 * UTF-8, JSON content as JSON, no trailing bytes), so a malformed update is
 * refused here instead of breaking every client that would receive it. */
#include "yjs.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAFE 9007199254740991ULL /* 2^53 - 1: JavaScript's exact integers */
#define MAX_DEPTH 200                /* nesting of values and JSON */
#define MAX_INPUT (256u << 20)       /* bytes of updates one call reads */

/* ------------------------------------------------------------ reading */

typedef struct rd {
    const uint8_t *p, *end;
    char *err;
} rd;

static bool fail(rd *r, const char *msg)
{
    if (!r->err[0]) snprintf(r->err, YJS_ERR_MAX, "%s", msg);
    return false;
}

int yjs_read_varuint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t num = 0;
    for (unsigned shift = 0; p < end && shift <= 49; shift += 7) {
        uint8_t b = *p++;
        num |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            if (num > MAX_SAFE) return -1;
            *v = num;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

int yjs_read_varbytes(const uint8_t **pp, const uint8_t *end, const uint8_t **data, size_t *len)
{
    const uint8_t *p = *pp;
    uint64_t n;
    if (yjs_read_varuint(&p, end, &n) != 0 || n > (uint64_t)(end - p)) return -1;
    *data = p;
    *len = (size_t)n;
    *pp = p + n;
    return 0;
}

static bool r_uint(rd *r, uint64_t *v)
{
    if (yjs_read_varuint(&r->p, r->end, v) == 0) return true;
    return fail(r, r->p < r->end ? "a number is out of range" : "the update ends too early");
}

static bool r_u8(rd *r, uint8_t *v)
{
    if (r->p >= r->end) return fail(r, "the update ends too early");
    *v = *r->p++;
    return true;
}

static bool r_skip(rd *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) return fail(r, "the update ends too early");
    r->p += n;
    return true;
}

static bool r_bytes(rd *r, const uint8_t **d, size_t *n)
{
    if (yjs_read_varbytes(&r->p, r->end, d, n) == 0) return true;
    return fail(r, "the update ends too early");
}

/* lib0 readVarString: UTF-8, refused when malformed (TextDecoder fatal) */
static bool r_string(rd *r, const uint8_t **d, size_t *n)
{
    if (!r_bytes(r, d, n)) return false;
    if (!utf8_valid(*d, *n)) return fail(r, "a string is not valid UTF-8");
    return true;
}

static bool r_json(rd *r)
{
    const uint8_t *d;
    size_t n;
    if (!r_string(r, &d, &n)) return false;
    if (!yjs_json_valid(d, n)) return fail(r, "JSON content is not valid JSON");
    return true;
}

/* lib0 readAny: one value, skipped */
static bool r_any(rd *r, int depth)
{
    if (depth > MAX_DEPTH) return fail(r, "values are nested too deeply");
    uint8_t t;
    uint64_t n;
    const uint8_t *d;
    size_t len;
    if (!r_u8(r, &t)) return false;
    switch (t) {
    case 127: case 126: case 121: case 120: /* undefined, null, false, true */
        return true;
    case 125: { /* lib0 varInt: sign and 6 bits, then 7 bits a byte */
        uint8_t b;
        if (!r_u8(r, &b)) return false;
        uint64_t num = b & 0x3f;
        for (unsigned shift = 6; b & 0x80; shift += 7) {
            if (shift > 55) return fail(r, "a number is out of range");
            if (!r_u8(r, &b)) return false;
            num |= (uint64_t)(b & 0x7f) << shift;
        }
        return num <= MAX_SAFE || fail(r, "a number is out of range");
    }
    case 124: return r_skip(r, 4);
    case 123: case 122: return r_skip(r, 8);
    case 119: return r_string(r, &d, &len);
    case 118: /* object: n keys and values */
        if (!r_uint(r, &n)) return false;
        for (uint64_t i = 0; i < n; i++)
            if (!r_string(r, &d, &len) || !r_any(r, depth + 1)) return false;
        return true;
    case 117: /* array */
        if (!r_uint(r, &n)) return false;
        for (uint64_t i = 0; i < n; i++)
            if (!r_any(r, depth + 1)) return false;
        return true;
    case 116: return r_bytes(r, &d, &len);
    default: return fail(r, "a value has an unknown type");
    }
}

/* ------------------------------------------------------------ JSON */

typedef struct jp {
    const uint8_t *p, *end;
} jp;

static void j_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static bool j_lit(jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return false;
    j->p += n;
    return true;
}

static bool j_digits(jp *j)
{
    const uint8_t *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > s;
}

static bool j_hex(uint8_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

static bool j_string(jp *j)
{
    j->p++; /* the opening quote */
    while (j->p < j->end) {
        uint8_t c = *j->p++;
        if (c == '"') return true;
        if (c < 0x20) return false;
        if (c != '\\') continue;
        if (j->p >= j->end) return false;
        c = *j->p++;
        if (c == 'u') {
            if (j->end - j->p < 4) return false;
            for (int i = 0; i < 4; i++)
                if (!j_hex(j->p[i])) return false;
            j->p += 4;
        } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
            return false;
        }
    }
    return false;
}

static bool j_value(jp *j, int depth)
{
    if (depth > MAX_DEPTH || j->p >= j->end) return false;
    uint8_t c = *j->p;
    if (c == '"') return j_string(j);
    if (c == '{' || c == '[') {
        uint8_t close = c == '{' ? '}' : ']';
        j->p++;
        j_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                if (j->p >= j->end || *j->p != '"' || !j_string(j)) return false;
                j_ws(j);
                if (j->p >= j->end || *j->p++ != ':') return false;
                j_ws(j);
            }
            if (!j_value(j, depth + 1)) return false;
            j_ws(j);
            if (j->p >= j->end) return false;
            uint8_t d = *j->p++;
            if (d == close) return true;
            if (d != ',') return false;
            j_ws(j);
        }
    }
    if (c == 't') return j_lit(j, "true");
    if (c == 'f') return j_lit(j, "false");
    if (c == 'n') return j_lit(j, "null");
    if (c == '-') j->p++;
    if (j->p >= j->end) return false;
    if (*j->p == '0') j->p++;
    else if (!j_digits(j)) return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!j_digits(j)) return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!j_digits(j)) return false;
    }
    return true;
}

bool yjs_json_valid(const uint8_t *s, size_t len)
{
    jp j = {s, s + len};
    j_ws(&j);
    if (!j_value(&j, 0)) return false;
    j_ws(&j);
    return j.p == j.end;
}

/* ------------------------------------------------------------ structs */

enum { K_GC, K_SKIP, K_ITEM };
enum {
    F_ORIGIN = 1, /* has an origin (left neighbour when created) */
    F_RIGHT = 2,  /* has a right origin */
    F_PKEY = 4,   /* parent given as a root type's name (else as an id) */
    F_PSUB = 8,   /* had a parentSub (a map key): keeps info bit 6 */
    F_MAT = 16,   /* content is this struct's own bytes (coalesced) */
};
/* content types (Item info & 31) */
enum { C_DELETED = 1, C_JSON = 2, C_BINARY = 3, C_STRING = 4, C_EMBED = 5, C_FORMAT = 6, C_TYPE = 7, C_ANY = 8,
       C_DOC = 9 };

typedef struct yid {
    uint64_t client, clock;
} yid;

/* One struct: a range of clocks [clock, clock + len) of one client. An
 * item's content is the bytes read (content, clen) and this struct covers
 * its units [cut, cut + len): cutting the front of an item moves clock and
 * cut together, and the item then has the unit before it as its origin (as
 * Yjs's sliceStruct and Item.write with an offset do). */
typedef struct ys {
    uint64_t client, clock, len, cut;
    yid origin, right, parent;
    const uint8_t *pkey, *psub, *content;
    uint32_t pkeylen, psublen, clen;
    uint32_t src, seq; /* which update, and the order read: ties in sorting */
    uint32_t srclast;  /* a GC joined from several updates: the last one */
    uint8_t kind, ref, flags;
} ys;

typedef struct del {
    uint64_t client, clock, len;
    uint32_t seq;
} del;

typedef struct vec {
    void *v;
    size_t n, cap, size;
} vec;

static void *vec_push(vec *v)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->v = xrealloc(v->v, v->cap * v->size);
    }
    return (char *)v->v + v->size * v->n++;
}

#define VEC(type) ((vec){NULL, 0, 0, sizeof(type)})
#define AT(vecp, type, i) (((type *)(vecp)->v)[i])

/* units (UTF-16 code units: Yjs counts a string's length in them) of UTF-8 */
static uint64_t utf16_units(const uint8_t *s, size_t n)
{
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if ((c & 0xc0) != 0x80) u += c >= 0xf0 ? 2 : 1;
    }
    return u;
}

static bool read_item(rd *r, uint8_t info, ys *s)
{
    s->kind = K_ITEM;
    s->ref = info & 31;
    size_t n;
    if (info & 0x80) {
        if (!r_uint(r, &s->origin.client) || !r_uint(r, &s->origin.clock)) return false;
        s->flags |= F_ORIGIN;
    }
    if (info & 0x40) {
        if (!r_uint(r, &s->right.client) || !r_uint(r, &s->right.clock)) return false;
        s->flags |= F_RIGHT;
    }
    if (!(info & 0xc0)) { /* no neighbours: the parent is written */
        uint64_t is_key;
        if (!r_uint(r, &is_key)) return false;
        if (is_key == 1) {
            if (!r_string(r, &s->pkey, &n)) return false;
            s->pkeylen = (uint32_t)n;
            s->flags |= F_PKEY;
        } else if (!r_uint(r, &s->parent.client) || !r_uint(r, &s->parent.clock)) {
            return false;
        }
        if (info & 0x20) {
            if (!r_string(r, &s->psub, &n)) return false;
            s->psublen = (uint32_t)n;
            s->flags |= F_PSUB;
        }
    }
    const uint8_t *start = r->p, *d;
    uint64_t count;
    switch (s->ref) {
    case C_DELETED:
        if (!r_uint(r, &s->len)) return false;
        break;
    case C_JSON:
        if (!r_uint(r, &count)) return false;
        start = r->p;
        for (uint64_t i = 0; i < count; i++) {
            if (!r_string(r, &d, &n)) return false;
            if (!(n == 9 && memcmp(d, "undefined", 9) == 0) && !yjs_json_valid(d, n))
                return fail(r, "JSON content is not valid JSON");
        }
        s->len = count;
        break;
    case C_BINARY:
        if (!r_bytes(r, &d, &n)) return false;
        s->len = 1;
        break;
    case C_STRING:
        if (!r_string(r, &d, &n)) return false;
        start = d;
        s->len = utf16_units(d, n);
        break;
    case C_EMBED:
        if (!r_json(r)) return false;
        s->len = 1;
        break;
    case C_FORMAT:
        if (!r_string(r, &d, &n) || !r_json(r)) return false;
        s->len = 1;
        break;
    case C_TYPE: {
        uint64_t type;
        if (!r_uint(r, &type)) return false;
        if (type > 6) return fail(r, "an item has an unknown type");
        if ((type == 3 || type == 5) && !r_string(r, &d, &n)) return false; /* XML element/hook name */
        s->len = 1;
        break;
    }
    case C_ANY:
        if (!r_uint(r, &count)) return false;
        start = r->p;
        for (uint64_t i = 0; i < count; i++)
            if (!r_any(r, 0)) return false;
        s->len = count;
        break;
    case C_DOC:
        if (!r_string(r, &d, &n) || !r_any(r, 0)) return false;
        s->len = 1;
        break;
    default:
        return fail(r, "an item has an unknown content type");
    }
    s->content = start;
    s->clen = (uint32_t)(r->p - start);
    return true;
}

/* Reads and checks one update: its structs into items (Skips too if
 * keep_skips) and its delete set into dels, or (both NULL) only checks it
 * and counts in *kept what it would have stored. The whole input must be
 * used. */
static bool read_update(rd *r, uint32_t src, bool keep_skips, vec *items, vec *dels, size_t *kept)
{
    uint64_t nclients;
    if (!r_uint(r, &nclients)) return false;
    for (uint64_t i = 0; i < nclients; i++) {
        uint64_t nstructs, client, clock;
        if (!r_uint(r, &nstructs) || !r_uint(r, &client) || !r_uint(r, &clock)) return false;
        for (uint64_t k = 0; k < nstructs; k++) {
            ys s;
            memset(&s, 0, sizeof s);
            s.client = client;
            s.clock = clock;
            s.src = s.srclast = src;
            uint8_t info;
            if (!r_u8(r, &info)) return false;
            if (info == 10) {
                s.kind = K_SKIP;
                if (!r_uint(r, &s.len)) return false;
            } else if (info & 31) {
                if (!read_item(r, info, &s)) return false;
            } else {
                s.kind = K_GC;
                if (!r_uint(r, &s.len)) return false;
            }
            if (s.len == 0) return fail(r, "a struct has length 0");
            if (s.len > MAX_SAFE - clock) return fail(r, "a clock is out of range");
            clock += s.len;
            if (s.kind == K_SKIP && !keep_skips) continue;
            if (kept) ++*kept;
            if (!items) continue;
            s.seq = (uint32_t)items->n;
            *(ys *)vec_push(items) = s;
        }
    }
    uint64_t nds;
    if (!r_uint(r, &nds)) return false;
    for (uint64_t i = 0; i < nds; i++) {
        uint64_t client, n;
        if (!r_uint(r, &client) || !r_uint(r, &n)) return false;
        for (uint64_t k = 0; k < n; k++) {
            del d = {client, 0, 0, dels ? (uint32_t)dels->n : 0};
            if (!r_uint(r, &d.clock) || !r_uint(r, &d.len)) return false;
            if (d.len > MAX_SAFE - d.clock) return fail(r, "a deleted range is out of range");
            if (kept) ++*kept;
            if (dels) *(del *)vec_push(dels) = d;
        }
    }
    if (r->p != r->end) return fail(r, "trailing bytes after the update");
    return true;
}

/* Moves the front of s by n clocks (n < s->len). */
static void cut_front(ys *s, uint64_t n)
{
    if (n == 0) return;
    s->clock += n;
    s->len -= n;
    if (s->kind != K_ITEM) return;
    s->cut += n;
    s->flags |= F_ORIGIN;
    s->origin.client = s->client;
    s->origin.clock = s->clock - 1;
}

/* A Skip over the gap [from, to) of client's clocks. */
static void push_skip(vec *v, uint64_t client, uint64_t from, uint64_t to)
{
    ys *s = vec_push(v);
    memset(s, 0, sizeof *s);
    s->kind = K_SKIP;
    s->client = client;
    s->clock = from;
    s->len = to - from;
}

/* ------------------------------------------------------------ writing */

void yjs_put_varbytes(buf *b, const void *data, size_t len)
{
    buf_put_varuint(b, len);
    buf_append(b, data, len);
}

static void put_u8(buf *b, uint8_t v) { buf_append(b, &v, 1); }

static const uint8_t FFFD[3] = {0xef, 0xbf, 0xbd};

/* The bytes of units [from, to) of a UTF-8 string. A cut through a
 * surrogate pair (a 4-byte character is two units) leaves U+FFFD on each
 * side, as Yjs's ContentString.splice does (and TextEncoder with a lone
 * surrogate). */
static void string_range(const uint8_t *s, size_t n, uint64_t from, uint64_t to, buf *out)
{
    size_t i = 0, b0 = n, b1 = n;
    uint64_t u = 0;
    bool pre = false, post = false;
    while (i < n) {
        unsigned w = s[i] < 0x80 ? 1 : s[i] < 0xe0 ? 2 : s[i] < 0xf0 ? 3 : 4;
        unsigned units = w == 4 ? 2 : 1;
        if (b0 == n && u >= from) b0 = i;
        if (b0 == n && units == 2 && u + 1 == from) pre = true, b0 = i + w;
        if (u >= to) {
            b1 = i;
            break;
        }
        if (units == 2 && u + 1 == to) {
            post = true;
            b1 = i;
            break;
        }
        u += units;
        i += w;
    }
    if (b1 < b0) b1 = b0; /* from and to both inside one pair */
    size_t len = (pre ? 3 : 0) + (b1 - b0) + (post ? 3 : 0);
    buf_put_varuint(out, len);
    if (pre) buf_append(out, FFFD, 3);
    buf_append(out, s + b0, b1 - b0);
    if (post) buf_append(out, FFFD, 3);
}

/* Skips n elements of an Any or JSON content list starting at p. */
static const uint8_t *skip_elements(const uint8_t *p, const uint8_t *end, uint8_t ref, uint64_t n)
{
    char err[YJS_ERR_MAX] = "";
    rd r = {p, end, err};
    const uint8_t *d;
    size_t len;
    for (uint64_t i = 0; i < n; i++) {
        if (ref == C_ANY) r_any(&r, 0);
        else r_bytes(&r, &d, &len);
    }
    return r.p;
}

/* The content bytes of s, without their count (strings: with their byte
 * length), into out. */
static void put_content(buf *out, const ys *s)
{
    if (s->flags & F_MAT) {
        if (s->ref == C_STRING) yjs_put_varbytes(out, s->content, s->clen);
        else {
            buf_put_varuint(out, s->len);
            buf_append(out, s->content, s->clen);
        }
        return;
    }
    const uint8_t *end = s->content + s->clen;
    switch (s->ref) {
    case C_DELETED:
        buf_put_varuint(out, s->len);
        break;
    case C_STRING:
        string_range(s->content, s->clen, s->cut, s->cut + s->len, out);
        break;
    case C_JSON:
    case C_ANY: {
        const uint8_t *a = skip_elements(s->content, end, s->ref, s->cut);
        const uint8_t *b = skip_elements(a, end, s->ref, s->len);
        buf_put_varuint(out, s->len);
        buf_append(out, a, (size_t)(b - a));
        break;
    }
    default: /* one unit, written as it was read */
        buf_append(out, s->content, s->clen);
    }
}

static void put_struct(buf *out, const ys *s)
{
    if (s->kind == K_GC || s->kind == K_SKIP) {
        put_u8(out, s->kind == K_GC ? 0 : 10);
        buf_put_varuint(out, s->len);
        return;
    }
    uint8_t info = (uint8_t)(s->ref | (s->flags & F_ORIGIN ? 0x80 : 0) | (s->flags & F_RIGHT ? 0x40 : 0) |
                             (s->flags & F_PSUB ? 0x20 : 0));
    put_u8(out, info);
    if (s->flags & F_ORIGIN) {
        buf_put_varuint(out, s->origin.client);
        buf_put_varuint(out, s->origin.clock);
    }
    if (s->flags & F_RIGHT) {
        buf_put_varuint(out, s->right.client);
        buf_put_varuint(out, s->right.clock);
    }
    if (!(s->flags & (F_ORIGIN | F_RIGHT))) {
        if (s->flags & F_PKEY) {
            put_u8(out, 1);
            yjs_put_varbytes(out, s->pkey, s->pkeylen);
        } else {
            put_u8(out, 0);
            buf_put_varuint(out, s->parent.client);
            buf_put_varuint(out, s->parent.clock);
        }
        if (s->flags & F_PSUB) yjs_put_varbytes(out, s->psub, s->psublen);
    }
    put_content(out, s);
}

/* Structs in the order given, one group per run of a client (Yjs's
 * LazyStructWriter). */
static void put_structs(buf *out, const ys *v, size_t n)
{
    size_t groups = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i].client != v[i - 1].client) groups++;
    buf_put_varuint(out, groups);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].client == v[i].client) j++;
        buf_put_varuint(out, j - i);
        buf_put_varuint(out, v[i].client);
        buf_put_varuint(out, v[i].clock);
        for (; i < j; i++) put_struct(out, &v[i]);
    }
}

/* A delete set already grouped by client, highest first. */
static void put_dels(buf *out, const del *d, size_t n)
{
    size_t groups = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || d[i].client != d[i - 1].client) groups++;
    buf_put_varuint(out, groups);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && d[j].client == d[i].client) j++;
        buf_put_varuint(out, d[i].client);
        buf_put_varuint(out, j - i);
        for (; i < j; i++) {
            buf_put_varuint(out, d[i].clock);
            buf_put_varuint(out, d[i].len);
        }
    }
}

/* ------------------------------------------------------------ helpers */

static int cmp_u64_desc(uint64_t a, uint64_t b) { return a > b ? -1 : a < b; }
static int cmp_u64(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

/* qsort, which must not be given a NULL array even when it is empty */
static void sort_vec(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1) qsort(base, n, size, cmp);
}

/* merge order: client descending, clock ascending, then as read */
static int cmp_struct(const void *pa, const void *pb)
{
    const ys *a = pa, *b = pb;
    int c = cmp_u64_desc(a->client, b->client);
    if (!c) c = cmp_u64(a->clock, b->clock);
    if (!c) c = cmp_u64(a->seq, b->seq);
    return c;
}

static int cmp_del_clock(const void *pa, const void *pb)
{
    const del *a = pa, *b = pb;
    int c = cmp_u64_desc(a->client, b->client);
    if (!c) c = cmp_u64(a->clock, b->clock);
    if (!c) c = cmp_u64(a->seq, b->seq);
    return c;
}

static int cmp_del_read(const void *pa, const void *pb)
{
    const del *a = pa, *b = pb;
    int c = cmp_u64_desc(a->client, b->client);
    return c ? c : cmp_u64(a->seq, b->seq);
}

/* Yjs's sortAndMergeDeleteSet, on a set sorted by cmp_del_clock. */
static void merge_dels(vec *dv)
{
    del *d = dv->v;
    size_t j = 0;
    for (size_t i = 0; i < dv->n; i++) {
        if (j > 0 && d[j - 1].client == d[i].client && d[j - 1].clock + d[j - 1].len >= d[i].clock) {
            uint64_t end = d[i].clock + d[i].len;
            if (end - d[j - 1].clock > d[j - 1].len) d[j - 1].len = end - d[j - 1].clock;
        } else {
            d[j++] = d[i];
        }
    }
    dv->n = j;
}

/* An open-addressing map from (client, clock) to a count or a clock. */
typedef struct idmap {
    struct slot {
        uint64_t client, clock, val;
        bool used;
    } *slots;
    size_t mask;
} idmap;

static void idmap_init(idmap *m, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
}

static struct slot *idmap_slot(idmap *m, uint64_t client, uint64_t clock)
{
    uint64_t h = client * 0x9e3779b97f4a7c15ULL ^ (clock + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
        struct slot *s = &m->slots[i];
        if (!s->used || (s->client == client && s->clock == clock)) return s;
    }
}

static uint64_t *idmap_put(idmap *m, uint64_t client, uint64_t clock)
{
    struct slot *s = idmap_slot(m, client, clock);
    if (!s->used) {
        s->used = true;
        s->client = client;
        s->clock = clock;
        s->val = 0;
    }
    return &s->val;
}

static const uint64_t *idmap_get(idmap *m, uint64_t client, uint64_t clock)
{
    struct slot *s = idmap_slot(m, client, clock);
    return s->used ? &s->val : NULL;
}

/* Blocks of bytes made while coalescing, freed with the call. */
typedef struct arena {
    struct block {
        struct block *next;
        uint8_t data[];
    } *head;
} arena;

static uint8_t *arena_take(arena *a, size_t n)
{
    struct block *b = xmalloc(sizeof *b + (n ? n : 1));
    b->next = a->head;
    a->head = b;
    return b->data;
}

static void arena_drop(arena *a)
{
    while (a->head) {
        struct block *b = a->head;
        a->head = b->next;
        free(b);
    }
}

/* The deleted ranges of client in the merged set d (sorted): index of the
 * first range that ends after clock. */
static size_t first_del(const del *d, size_t n, uint64_t client, uint64_t clock)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_u64_desc(d[mid].client, client);
        if (c < 0 || (c == 0 && d[mid].clock + d[mid].len <= clock)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* 0: none of [clock, clock + len) deleted, 1: all of it, 2: part */
static int deleted_state(const del *d, size_t n, uint64_t client, uint64_t clock, uint64_t len)
{
    size_t i = first_del(d, n, client, clock);
    while (i < n && d[i].client == client && d[i].len == 0) i++;
    if (i >= n || d[i].client != client || d[i].clock >= clock + len) return 0;
    return d[i].clock <= clock && d[i].clock + d[i].len >= clock + len ? 1 : 2;
}

/* Splits [pos, end) of client at the edges of the ranges r (sorted and
 * merged, as merge_dels leaves them): emit(arg, client, from, to, covered)
 * for each piece in order, covered when one of r holds it. */
static void split_at_ranges(const del *r, size_t n, uint64_t client, uint64_t pos, uint64_t end,
                            void (*emit)(void *, uint64_t, uint64_t, uint64_t, bool), void *arg)
{
    size_t k = first_del(r, n, client, pos);
    while (pos < end) {
        while (k < n && r[k].client == client && r[k].len == 0) k++;
        bool in = k < n && r[k].client == client && r[k].clock < end;
        bool covered = in && r[k].clock <= pos;
        uint64_t upto = !in ? end : covered ? r[k].clock + r[k].len : r[k].clock;
        if (upto > end) upto = end;
        emit(arg, client, pos, upto, covered);
        if (covered) k++;
        pos = upto;
    }
}

typedef struct pieces {
    vec *out;
    const ys *s;
} pieces;

/* The part [from, to) of p->s, pushed on p->out. */
static ys *push_piece(pieces *p, uint64_t from, uint64_t to)
{
    ys *piece = vec_push(p->out);
    *piece = *p->s;
    cut_front(piece, from - piece->clock);
    piece->len = to - from;
    return piece;
}

/* gc: a deleted piece keeps only its length */
static void emit_gc_piece(void *arg, uint64_t client, uint64_t from, uint64_t to, bool deleted)
{
    (void)client;
    ys *piece = push_piece(arg, from, to);
    if (deleted) {
        piece->ref = C_DELETED;
        piece->flags &= (uint8_t)~F_MAT;
    }
}

/* gc: items split at the delete set's edges; deleted parts lose content */
static void gc_structs(vec *sv, const del *d, size_t nd)
{
    vec out = VEC(ys);
    for (size_t k = 0; k < sv->n; k++) {
        const ys *s = &AT(sv, ys, k);
        if (s->kind != K_ITEM) {
            *(ys *)vec_push(&out) = *s;
            continue;
        }
        pieces p = {&out, s};
        split_at_ranges(d, nd, s->client, s->clock, s->clock + s->len, emit_gc_piece, &p);
    }
    free(sv->v);
    *sv = out;
}

static bool joinable_ref(uint8_t ref) { return ref == C_DELETED || ref == C_STRING || ref == C_ANY || ref == C_JSON; }

/* coalesce: see the file comment */
static void coalesce_structs(vec *sv, const del *d, size_t nd, arena *ar)
{
    ys *v = sv->v;
    size_t n = sv->n;
    idmap origins;
    idmap_init(&origins, n);
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == K_ITEM && (v[i].flags & F_ORIGIN)) (*idmap_put(&origins, v[i].origin.client, v[i].origin.clock))++;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        if (v[i].kind == K_ITEM && joinable_ref(v[i].ref)) {
            int state = deleted_state(d, nd, v[i].client, v[i].clock, v[i].len);
            while (state != 2 && j < n) {
                const ys *a = &v[j - 1], *b = &v[j];
                if (b->kind != K_ITEM || b->client != a->client || b->clock != a->clock + a->len || b->ref != a->ref ||
                    !(b->flags & F_ORIGIN) || b->origin.client != a->client || b->origin.clock != b->clock - 1 ||
                    (a->flags & F_RIGHT) != (b->flags & F_RIGHT) ||
                    ((a->flags & F_RIGHT) && (a->right.client != b->right.client || a->right.clock != b->right.clock)) ||
                    deleted_state(d, nd, b->client, b->clock, b->len) != state)
                    break;
                const uint64_t *uses = idmap_get(&origins, b->origin.client, b->origin.clock);
                if (uses && *uses > 1) break;
                j++;
            }
        }
        ys joined = v[i];
        if (j > i + 1) {
            for (size_t k = i + 1; k < j; k++) joined.len += v[k].len;
            if (joined.ref != C_DELETED) {
                buf tmp;
                buf_init(&tmp);
                for (size_t k = i; k < j; k++) {
                    size_t at = tmp.len;
                    put_content(&tmp, &v[k]);
                    /* drop the count / byte length put_content wrote */
                    const uint8_t *p = (const uint8_t *)tmp.data + at;
                    uint64_t skip;
                    yjs_read_varuint(&p, (const uint8_t *)tmp.data + tmp.len, &skip);
                    size_t hdr = (size_t)(p - ((const uint8_t *)tmp.data + at));
                    memmove(tmp.data + at, tmp.data + at + hdr, tmp.len - at - hdr);
                    tmp.len -= hdr;
                }
                uint8_t *mem = arena_take(ar, tmp.len);
                if (tmp.len) memcpy(mem, tmp.data, tmp.len);
                joined.content = mem;
                joined.clen = (uint32_t)tmp.len;
                joined.cut = 0;
                joined.flags |= F_MAT;
                buf_free(&tmp);
            }
        }
        v[w++] = joined;
        i = j;
    }
    sv->n = w;
    free(origins.slots);
}

/* ------------------------------------------------------------ API */

typedef struct work {
    vec items, dels;
    arena ar;
} work;

static void work_init(work *w)
{
    w->items = VEC(ys);
    w->dels = VEC(del);
    w->ar.head = NULL;
}

static void work_free(work *w)
{
    free(w->items.v);
    free(w->dels.v);
    arena_drop(&w->ar);
}

static bool read_one(const uint8_t *u, size_t len, uint32_t src, bool keep_skips, work *w, char *err)
{
    rd r = {u, u + len, err};
    return read_update(&r, src, keep_skips, &w->items, &w->dels, NULL);
}

/* Every incoming update is checked: read without storing anything. */
int yjs_check_update(const uint8_t *update, size_t len, bool *empty, char err[YJS_ERR_MAX])
{
    err[0] = 0;
    rd r = {update, update + len, err};
    size_t kept = 0;
    if (!read_update(&r, 0, true, NULL, NULL, &kept)) return -1;
    if (empty) *empty = kept == 0;
    return 0;
}

int yjs_check_state_vector(const uint8_t *sv, size_t len, char err[YJS_ERR_MAX])
{
    err[0] = 0;
    rd r = {sv, sv + len, err};
    uint64_t n, v;
    if (!r_uint(&r, &n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (!r_uint(&r, &v) || !r_uint(&r, &v)) return -1;
    if (r.p != r.end) return fail(&r, "trailing bytes after the state vector"), -1;
    return 0;
}

int yjs_merge(const yjs_bytes *updates, size_t n, int flags, buf *out, char err[YJS_ERR_MAX])
{
    err[0] = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += updates[i].len;
    if (total > MAX_INPUT) {
        snprintf(err, YJS_ERR_MAX, "updates to merge are larger than %u bytes", MAX_INPUT);
        return -1;
    }
    work w;
    work_init(&w);
    for (size_t i = 0; i < n; i++) {
        if (!read_one(updates[i].data, updates[i].len, (uint32_t)i, false, &w, err)) {
            if (n > 1) {
                char inner[YJS_ERR_MAX];
                memcpy(inner, err, YJS_ERR_MAX);
                snprintf(err, YJS_ERR_MAX, "update %zu: %.120s", i + 1, inner);
            }
            work_free(&w);
            return -1;
        }
    }
    if (n == 1 && !flags) { /* as Yjs: one update is its own merge */
        buf_append(out, updates[0].data, updates[0].len);
        work_free(&w);
        return 0;
    }
    /* structs: per client, a sweep over them in clock order; what a struct
     * already written covers is dropped, a gap becomes a Skip */
    sort_vec(w.items.v, w.items.n, sizeof(ys), cmp_struct);
    vec m = VEC(ys);
    ys *in = w.items.v;
    for (size_t i = 0; i < w.items.n; i++) {
        ys s = in[i];
        ys *prev = m.n ? &AT(&m, ys, m.n - 1) : NULL;
        if (prev && prev->client == s.client) {
            uint64_t end = prev->clock + prev->len;
            if (s.clock + s.len <= end) continue;
            if (s.clock > end) {
                push_skip(&m, s.client, end, s.clock);
            } else {
                cut_front(&s, end - s.clock);
                /* GCs from different updates join (Yjs's GC.mergeWith) */
                if (prev->kind == K_GC && s.kind == K_GC && prev->srclast != s.src) {
                    prev->len += s.len;
                    prev->srclast = s.src;
                    continue;
                }
            }
        }
        *(ys *)vec_push(&m) = s;
    }
    sort_vec(w.dels.v, w.dels.n, sizeof(del), cmp_del_clock);
    merge_dels(&w.dels);
    if (flags & YJS_GC) gc_structs(&m, w.dels.v, w.dels.n);
    if (flags & YJS_COALESCE) coalesce_structs(&m, w.dels.v, w.dels.n, &w.ar);
    put_structs(out, m.v, m.n);
    put_dels(out, w.dels.v, w.dels.n);
    free(m.v);
    work_free(&w);
    return 0;
}

/* A state vector as Yjs's encodeStateVectorFromUpdate reads one off an
 * update's structs (in order, Skips included): per client the clock reached
 * from 0 without a gap. Calls emit(client, clock) for each. */
static void state_of(const ys *v, size_t n, void (*emit)(void *, uint64_t, uint64_t), void *arg)
{
    if (n == 0) return;
    uint64_t client = v[0].client;
    bool stop = v[0].clock != 0;
    uint64_t clock = stop ? 0 : v[0].clock + v[0].len;
    for (size_t i = 0; i < n; i++) {
        if (v[i].client != client) {
            if (clock != 0) emit(arg, client, clock);
            client = v[i].client;
            clock = 0;
            stop = v[i].clock != 0;
        }
        if (v[i].kind == K_SKIP) stop = true;
        if (!stop) clock = v[i].clock + v[i].len;
    }
    if (clock != 0) emit(arg, client, clock);
}

static void emit_pair(void *arg, uint64_t client, uint64_t clock)
{
    buf *b = arg;
    buf_put_varuint(b, client);
    buf_put_varuint(b, clock);
}

static void count_pair(void *arg, uint64_t client, uint64_t clock)
{
    (void)client, (void)clock;
    (*(size_t *)arg)++;
}

int yjs_state_vector(const uint8_t *update, size_t len, buf *out, char err[YJS_ERR_MAX])
{
    err[0] = 0;
    work w;
    work_init(&w);
    if (!read_one(update, len, 0, true, &w, err)) {
        work_free(&w);
        return -1;
    }
    size_t count = 0;
    state_of(w.items.v, w.items.n, count_pair, &count);
    buf_put_varuint(out, count);
    state_of(w.items.v, w.items.n, emit_pair, out);
    work_free(&w);
    return 0;
}

/* Yjs's diffUpdate over structs read in order, against the clocks in sv
 * (client -> clock, idmap keyed (client, 0)). */
static void diff_structs(const ys *in, size_t n, idmap *sv, vec *out)
{
    size_t i = 0;
    while (i < n) {
        const ys *s = &in[i];
        uint64_t client = s->client;
        const uint64_t *have = idmap_get(sv, client, 0);
        uint64_t svc = have ? *have : 0;
        if (s->kind == K_SKIP) { /* the first struct written is never a Skip */
            i++;
            continue;
        }
        if (s->clock + s->len > svc) {
            ys c = *s;
            if (svc > c.clock) cut_front(&c, svc - c.clock);
            *(ys *)vec_push(out) = c;
            for (i++; i < n && in[i].client == client; i++) *(ys *)vec_push(out) = in[i];
        } else {
            while (i < n && in[i].client == client && in[i].clock + in[i].len <= svc) i++;
        }
    }
}

static bool read_sv(const uint8_t *sv, size_t len, idmap *m, char *err)
{
    rd r = {sv, sv + len, err};
    uint64_t n, client, clock;
    if (!r_uint(&r, &n)) return false;
    idmap_init(m, n < 4096 ? (size_t)n : 4096);
    size_t used = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!r_uint(&r, &client) || !r_uint(&r, &clock)) return false;
        if (++used * 2 > m->mask) { /* grow */
            idmap bigger;
            idmap_init(&bigger, (m->mask + 1));
            for (size_t k = 0; k <= m->mask; k++)
                if (m->slots[k].used) *idmap_put(&bigger, m->slots[k].client, 0) = m->slots[k].val;
            free(m->slots);
            *m = bigger;
        }
        *idmap_put(m, client, 0) = clock;
    }
    if (r.p != r.end) return fail(&r, "trailing bytes after the state vector");
    return true;
}

int yjs_diff(const uint8_t *update, size_t len, const uint8_t *sv, size_t svlen, buf *out, char err[YJS_ERR_MAX])
{
    err[0] = 0;
    idmap m = {NULL, 0};
    if (!read_sv(sv, svlen, &m, err)) {
        free(m.slots);
        return -1;
    }
    work w;
    work_init(&w);
    if (!read_one(update, len, 0, true, &w, err)) {
        free(m.slots);
        work_free(&w);
        return -1;
    }
    vec d = VEC(ys);
    diff_structs(w.items.v, w.items.n, &m, &d);
    put_structs(out, d.v, d.n);
    /* the delete set as Yjs reads and writes it: clients highest first,
     * each one's ranges in the order read */
    sort_vec(w.dels.v, w.dels.n, sizeof(del), cmp_del_read);
    put_dels(out, w.dels.v, w.dels.n);
    free(d.v);
    free(m.slots);
    work_free(&w);
    return 0;
}

/* news: a deleted range the document does not have */
static void emit_del(void *arg, uint64_t client, uint64_t from, uint64_t to, bool covered)
{
    if (!covered) *(del *)vec_push(arg) = (del){client, from, to - from, 0};
}

/* news: a part of a struct the document does not have, with a Skip before
 * it if it does not continue the last */
static void emit_piece(void *arg, uint64_t client, uint64_t from, uint64_t to, bool covered)
{
    if (covered) return;
    pieces *p = arg;
    vec *out = p->out;
    if (out->n) {
        const ys *last = &AT(out, ys, out->n - 1);
        if (last->client == client && last->clock + last->len > from) { /* overlaps a struct before it */
            from = last->clock + last->len;
            if (from >= to) return;
        }
        if (last->client == client && last->clock + last->len < from)
            push_skip(out, client, last->clock + last->len, from);
    }
    push_piece(p, from, to);
}

int yjs_news(const uint8_t *update, size_t len, const uint8_t *doc, size_t doclen, buf *out, bool *empty,
             char err[YJS_ERR_MAX])
{
    err[0] = 0;
    work dw, uw;
    work_init(&dw);
    work_init(&uw);
    int rc = -1;
    vec cover = VEC(del), d = VEC(ys), nd = VEC(del);
    if (!read_one(doc, doclen, 0, false, &dw, err)) {
        char inner[YJS_ERR_MAX];
        memcpy(inner, err, YJS_ERR_MAX);
        snprintf(err, YJS_ERR_MAX, "the document: %.120s", inner);
        goto done;
    }
    if (!read_one(update, len, 0, false, &uw, err)) goto done;
    /* the clocks the document has (gaps and all), as ranges */
    for (size_t i = 0; i < dw.items.n; i++) {
        const ys *s = &AT(&dw.items, ys, i);
        *(del *)vec_push(&cover) = (del){s->client, s->clock, s->len, (uint32_t)i};
    }
    sort_vec(cover.v, cover.n, sizeof(del), cmp_del_clock);
    merge_dels(&cover);
    /* the update's structs, less those clocks; in the order read, as
     * Yjs writes them (a client's structs in clock order) */
    sort_vec(uw.items.v, uw.items.n, sizeof(ys), cmp_struct);
    for (size_t i = 0; i < uw.items.n; i++) {
        const ys *s = &AT(&uw.items, ys, i);
        pieces p = {&d, s};
        split_at_ranges(cover.v, cover.n, s->client, s->clock, s->clock + s->len, emit_piece, &p);
    }
    /* deletions: the update's ranges less the document's */
    sort_vec(dw.dels.v, dw.dels.n, sizeof(del), cmp_del_clock);
    merge_dels(&dw.dels);
    sort_vec(uw.dels.v, uw.dels.n, sizeof(del), cmp_del_clock);
    merge_dels(&uw.dels);
    for (size_t i = 0; i < uw.dels.n; i++) {
        const del *x = &AT(&uw.dels, del, i);
        split_at_ranges(dw.dels.v, dw.dels.n, x->client, x->clock, x->clock + x->len, emit_del, &nd);
    }
    put_structs(out, d.v, d.n);
    put_dels(out, nd.v, nd.n);
    *empty = d.n == 0 && nd.n == 0;
    rc = 0;
done:
    free(cover.v);
    free(d.v);
    free(nd.v);
    work_free(&dw);
    work_free(&uw);
    return rc;
}
