/* metrics_page.h - rendering /metrics (metrics_page.c). */
#ifndef LP_METRICS_PAGE_H
#define LP_METRICS_PAGE_H

#include "buf.h"
#include "worker.h"

/* Appends the whole page to out; false once shutdown has begun (the other
 * workers cannot be paused to read their rooms then). */
bool metrics_render(worker *w, buf *out);

#endif
