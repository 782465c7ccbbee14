/* fuzz_yjs.c - Yjs updates (yjs.c) on untrusted bytes: what a y-websocket
 * client sends reaches these functions before anything else looks at it.
 *
 * The input is cut into up to four updates (byte 0: how many, then one
 * length byte each; the last takes the rest). Whatever the bytes: no crash,
 * no leak, no overread. And for the updates that pass yjs_check_update:
 * merging them succeeds (plain, and with gc + coalescing), the result
 * passes the check again, its state vector is a valid state vector, merging
 * the result alone with gc + coalescing reads it back, diffing it against
 * its own state vector leaves no structs, and nothing in it is news to it.
 * A failure aborts naming the step. */
#include "yjs.h"
#include "fuzz_util.h"

#include <string.h>

static void must(bool ok, const char *step, const char *err) { FUZZ_CHECK(ok, "%s: %s", step, err); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t n = (data[0] & 3) + 1, pos = 1 + n;
    if (pos > size) return 0;
    yjs_bytes in[4];
    size_t good = 0;
    char err[YJS_ERR_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t len = i + 1 == n ? size - pos : data[1 + i];
        if (len > size - pos) len = size - pos;
        bool empty;
        if (yjs_check_update(data + pos, len, &empty, err) == 0) in[good++] = (yjs_bytes){data + pos, len};
        else must(err[0] != 0, "a refusal without a reason", "");
        yjs_check_state_vector(data + pos, len, err);
        pos += len;
    }
    if (good == 0) return 0;
    for (int flags = 0; flags <= (YJS_GC | YJS_COALESCE); flags += YJS_GC | YJS_COALESCE) {
        buf m, sv, d, again, news;
        buf_init(&m);
        buf_init(&sv);
        buf_init(&d);
        buf_init(&again);
        buf_init(&news);
        must(yjs_merge(in, good, flags, &m, err) == 0, "merge of checked updates", err);
        const uint8_t *mb = (const uint8_t *)m.data;
        bool empty;
        must(yjs_check_update(mb, m.len, &empty, err) == 0, "check of a merge", err);
        must(yjs_state_vector(mb, m.len, &sv, err) == 0, "state vector of a merge", err);
        must(yjs_check_state_vector((const uint8_t *)sv.data, sv.len, err) == 0, "check of a state vector", err);
        yjs_bytes one = {mb, m.len};
        must(yjs_merge(&one, 1, YJS_GC | YJS_COALESCE, &again, err) == 0, "merge of a merge", err);
        must(yjs_diff(mb, m.len, (const uint8_t *)sv.data, sv.len, &d, err) == 0, "diff against its own state", err);
        must(yjs_news(mb, m.len, mb, m.len, &news, &empty, err) == 0, "news against itself", err);
        FUZZ_CHECK(empty, "news of an update against itself is not empty (%zu bytes)", news.len);
        buf_free(&m);
        buf_free(&sv);
        buf_free(&d);
        buf_free(&again);
        buf_free(&news);
    }
    return 0;
}
