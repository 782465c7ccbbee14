/* metrics_listener.h - the --metrics listener (metrics_listener.c). */
#ifndef LP_METRICS_LISTENER_H
#define LP_METRICS_LISTENER_H

#include "worker.h"

/* Listens on "host:port" on w's loop and answers GET /metrics. Returns 0,
 * or -1 with *err (caller frees). */
int metrics_listen(worker *w, const char *addr, char **err);
void metrics_close(void);

#endif
