/* conn.c - shared parts of every connection implementation. */
#include "conn.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void conn_init(lp_conn *c, const conn_ops *ops, const char *id, const char *uri)
{
    memset(c, 0, sizeof *c);
    c->ops = ops;
    c->id = xstrdup(id);
    c->uri = xstrdup(uri);
    c->refs = 1;
}

void conn_cleanup(lp_conn *c)
{
    if (c->box) c->box->c = NULL;
    c->box = NULL;
    if (c->release) c->release(c);
    c->release = NULL;
    c->room = NULL;
    free(c->id);
    free(c->uri);
    c->id = c->uri = NULL;
}

void conn_unref(lp_conn *c)
{
    if (--c->refs == 0) c->ops->destroy(c);
}
