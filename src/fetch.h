/* fetch.h - outbound HTTP(S): one request, its redirects and its response,
 * over a per-thread keep-alive pool. Network only: the result goes to a C
 * callback (lua_fetch.c makes luaparty.fetch of it). */
#ifndef LP_FETCH_H
#define LP_FETCH_H

#include "buf.h"
#include "dial.h"
#include "http.h"
#include <stdint.h>
#include <uv.h>

struct config;

typedef struct fetch_request {
    const char *method;   /* an uppercase token; copied */
    url u;                /* an http(s) URL; the fetch takes u.target */
    http_headers headers; /* taken */
    const char *body;     /* copied */
    size_t body_len;
    size_t max_bytes;     /* a larger response body fails the fetch */
    uint64_t timeout_ms;  /* for the whole fetch, redirects included; > 0 */
    bool forward;         /* to another node of the cluster: no allow-list, redirects passed on */
} fetch_request;

/* What a fetch ended with: error set, or status, headers and body. */
typedef struct fetch_result {
    char *error;
    int status;
    http_headers headers;
    buf body;
} fetch_result;

/* Runs once per fetch, possibly before fetch_start returns. The contents
 * of *res are the callee's: it moves them out (res itself is gone after
 * the call) and frees them with fetch_result_free. */
typedef void (*fetch_done_fn)(void *ud, fetch_result *res);

/* Starts req on loop; cfg's outbound allow-list is checked for every host,
 * redirects included. */
void fetch_start(uv_loop_t *loop, const struct config *cfg, fetch_request *req, fetch_done_fn done, void *ud);
void fetch_result_free(fetch_result *res);
/* Fails the fetches in flight and closes pooled keep-alive connections
 * (shutdown; the running thread's pool). */
void fetch_shutdown(void);

#endif
