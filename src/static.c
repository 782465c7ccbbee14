/* static.c - static files from the project's "serve" folder.
 *
 * The URL path is percent-decoded, then resolved with realpath and must stay
 * inside the folder: "..", encoded slashes and symlinks pointing out are all
 * refused the same way (as not found). ETag + If-None-Match give 304s.
 * Files are read whole on the loop thread: this serves a project's page and
 * assets, not large downloads (files over 16 MiB are refused). A missing
 * /favicon.ico is 204, not 404 (see static_serve). */
#include "static.h"
#include "buf.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILE (16 * 1024 * 1024)

const char *static_content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
        {".map", "application/json"}, {".txt", "text/plain; charset=utf-8"},
        {".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"}, {".gif", "image/gif"}, {".webp", "image/webp"},
        {".ico", "image/x-icon"}, {".wasm", "application/wasm"}, {".woff", "font/woff"},
        {".woff2", "font/woff2"}, {".xml", "application/xml"}, {".pdf", "application/pdf"},
        {".mp3", "audio/mpeg"}, {".mp4", "video/mp4"}, {".webm", "video/webm"},
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            if (str_ieq(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

/* realpath(root + rel), if it exists and is inside root. */
static bool resolve(const char *root, const char *rel, char out[PATH_MAX], struct stat *st)
{
    char joined[PATH_MAX * 2];
    snprintf(joined, sizeof joined, "%s/%s", root, rel);
    if (!realpath(joined, out)) return false;
    size_t n = strlen(root);
    if (strncmp(out, root, n) != 0 || (out[n] != '/' && out[n] != 0)) return false;
    if (stat(out, st) != 0) return false;
    if (S_ISDIR(st->st_mode)) {
        size_t len = strlen(out);
        if (len + 12 >= PATH_MAX) return false;
        memcpy(out + len, "/index.html", 12);
        if (stat(out, st) != 0 || !S_ISREG(st->st_mode)) return false;
    }
    return S_ISREG(st->st_mode);
}

http_response *static_serve(const config *cfg, const http_request *req)
{
    if (!cfg->serve_dir) return NULL;
    if (strcmp(req->method, "HEAD") != 0 && strcmp(req->method, "GET") != 0) return NULL;
    char rel[PATH_MAX];
    size_t n = strcspn(req->target, "?#");
    if (n >= sizeof rel) return NULL;
    memcpy(rel, req->target, n);
    n = url_decode(rel, n, false);
    if (memchr(rel, 0, n)) return NULL; /* an encoded NUL */
    char path[PATH_MAX];
    struct stat st;
    bool found = resolve(cfg->serve_dir, rel, path, &st);
    if (found && n > 1 && rel[n - 1] != '/' && strcmp(path + strlen(path) - 11, "/index.html") == 0 &&
        !strstr(rel, "index.html")) {
        /* a folder without its slash: redirect, so the page's relative links work */
        http_response *res = http_response_new(301, NULL, NULL, 0);
        buf loc;
        buf_init(&loc);
        buf_append(&loc, req->target, strcspn(req->target, "?#"));
        buf_appendstr(&loc, "/");
        buf_appendstr(&loc, req->target + strcspn(req->target, "?#"));
        if (http_header_value_ok(loc.data, loc.len)) http_headers_add(&res->headers, "location", 8, loc.data, loc.len);
        buf_free(&loc);
        return res;
    }
    if (!found && cfg->serve_spa) {
        /* a single-page app owns every path that is not a file */
        const char *base = strrchr(rel, '/');
        if (!strchr(base ? base : rel, '.')) found = resolve(cfg->serve_dir, "index.html", path, &st);
    }
    if (!found && !strcmp(rel, "/favicon.ico") && !(cfg->parties[0]->hooks & PARTY_HAS_FETCH)) {
        /* Browsers ask for it on every page: a folder without one answers
         * "no content" rather than a 404 that shows as an error in the
         * browser's console and in the dev log (onFetch, if any, decides). */
        http_response *res = http_response_new(204, NULL, NULL, 0);
        http_headers_add(&res->headers, "cache-control", 13, "max-age=3600", 12);
        return res;
    }
    if (!found || st.st_size > MAX_FILE) return NULL;

    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec);
    const char *inm = http_headers_get(&req->headers, "if-none-match");
    http_response *res;
    if (inm && (strstr(inm, etag) || strcmp(inm, "*") == 0)) {
        res = http_response_new(304, NULL, NULL, 0);
    } else {
        /* HEAD reads the file too: its Content-Length is the body's */
        size_t len = 0;
        char *data = read_file(path, &len);
        if (!data) return NULL;
        res = http_response_new(200, static_content_type(path), data, len);
        free(data);
    }
    http_headers_add(&res->headers, "etag", 4, etag, strlen(etag));
    http_headers_add(&res->headers, "cache-control", 13, "no-cache", 8);
    return res;
}
