/* metrics_listener.c - the --metrics listener: a tiny HTTP responder of
 * its own, one request per connection, then close. It lives apart from the
 * public server (server.c) so /metrics is never public by accident, and it
 * only needs to tell GET /metrics from anything else; metrics_page.c renders
 * what it answers with. */
#include "metrics_listener.h"
#include "metrics_page.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

static struct {
    uv_tcp_t listener;
    worker *w;
    bool on;
} E;

typedef struct scrape {
    uv_tcp_t tcp;
    uv_write_t wreq;
    char in[2048];
    size_t in_len;
    buf out;
} scrape;

static void scrape_closed(uv_handle_t *h)
{
    scrape *sc = h->data;
    buf_free(&sc->out);
    free(sc);
}

static void scrape_written(uv_write_t *req, int status)
{
    scrape *sc = req->data;
    uv_close((uv_handle_t *)&sc->tcp, scrape_closed);
}

static void scrape_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    scrape *sc = h->data;
    b->base = sc->in + sc->in_len;
    b->len = sizeof sc->in - sc->in_len - 1;
}

static void scrape_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    scrape *sc = st->data;
    if (n < 0 || (n == 0 && sc->in_len == sizeof sc->in - 1)) {
        uv_close((uv_handle_t *)&sc->tcp, scrape_closed);
        return;
    }
    sc->in_len += (size_t)n;
    sc->in[sc->in_len] = 0;
    if (!strstr(sc->in, "\r\n\r\n")) {
        if (sc->in_len == sizeof sc->in - 1) uv_close((uv_handle_t *)&sc->tcp, scrape_closed);
        return;
    }
    uv_read_stop(st);
    buf body;
    buf_init(&body);
    const char *status = "200 OK";
    if (strncmp(sc->in, "GET /metrics ", 13) != 0 && strncmp(sc->in, "GET /metrics?", 13) != 0) {
        status = "404 Not Found";
        buf_appendstr(&body, "Not found: try /metrics\n");
    } else if (!metrics_render(E.w, &body)) {
        status = "503 Service Unavailable";
        buf_appendstr(&body, "shutting down\n");
    }
    buf_printf(&sc->out, "HTTP/1.1 %s\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: %zu\r\n"
                         "connection: close\r\n\r\n",
               status, body.len);
    buf_append(&sc->out, body.data, body.len);
    buf_free(&body);
    uv_buf_t ub = uv_buf_init(sc->out.data, (unsigned)sc->out.len);
    sc->wreq.data = sc;
    if (uv_write(&sc->wreq, st, &ub, 1, scrape_written) != 0) uv_close((uv_handle_t *)&sc->tcp, scrape_closed);
}

static void on_scrape(uv_stream_t *ls, int status)
{
    if (status < 0) return;
    scrape *sc = xcalloc(1, sizeof *sc);
    buf_init(&sc->out);
    uv_tcp_init(ls->loop, &sc->tcp);
    sc->tcp.data = sc;
    if (uv_accept(ls, (uv_stream_t *)&sc->tcp) != 0) {
        uv_close((uv_handle_t *)&sc->tcp, scrape_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&sc->tcp, scrape_alloc, scrape_read);
}

int metrics_listen(worker *w, const char *addr, char **err)
{
    char host[256];
    int port;
    if (!host_port_split(addr, host, sizeof host, &port)) {
        *err = xstrdup("--metrics wants HOST:PORT, e.g. 127.0.0.1:9464");
        return -1;
    }
    struct sockaddr_in sa;
    if (uv_ip4_addr(host, port, &sa) != 0) {
        *err = xstrdup("--metrics: not an IPv4 HOST:PORT");
        return -1;
    }
    E.w = w;
    uv_tcp_init(w->loop, &E.listener);
    int rc = uv_tcp_bind(&E.listener, (struct sockaddr *)&sa, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&E.listener, 64, on_scrape);
    if (rc != 0) {
        buf b;
        buf_init(&b);
        buf_printf(&b, "--metrics %s: %s", addr, uv_strerror(rc));
        *err = buf_steal(&b);
        uv_close((uv_handle_t *)&E.listener, NULL);
        return -1;
    }
    E.on = true;
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&E.listener, (struct sockaddr *)&bound, &len);
    log_msg(LOG_INFO, "metrics on http://%s:%d/metrics", host, ntohs(bound.sin_port));
    return 0;
}

void metrics_close(void)
{
    if (E.on && !uv_is_closing((uv_handle_t *)&E.listener)) uv_close((uv_handle_t *)&E.listener, NULL);
    E.on = false;
}
