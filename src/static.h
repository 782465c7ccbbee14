/* static.h - serving a project's static files (partykit.json "serve"). */
#ifndef LP_STATIC_H
#define LP_STATIC_H

#include "config.h"
#include "http.h"

/* Answers GET/HEAD for a file under cfg->serve_dir. Returns the response,
 * or NULL if no file matches (the caller goes on to onFetch, then 404). */
http_response *static_serve(const config *cfg, const http_request *req);
/* The Content-Type for a file name, by its extension. */
const char *static_content_type(const char *path);

#endif
