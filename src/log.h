/* log.h - leveled logging to stderr (colour only on a terminal). */
#ifndef LP_LOG_H
#define LP_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_set_level(enum log_level lvl);
/* One JSON object per line instead of text (--log-format json). */
void log_set_json(bool on);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int log_parse_level(const char *name);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Printed whatever --log-level says, tagged lvl: for the few lines scripts
 * and tests wait for ("listening on ..."). */
void log_always(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A printable form of len bytes for a log line, in out[cap]: control bytes
 * and backslashes as \xNN (a line stays one line, whatever a client sent),
 * cut with "..." (never inside a UTF-8 character) where it does not fit.
 * Returns out. */
const char *log_preview(char *out, size_t cap, const void *data, size_t len);
/* Sends every line that passes the level to sink instead of stderr (NULL:
 * stderr again). `luaparty test` collects a test's party errors and prints
 * this way. One thread only. */
typedef void (*log_sink)(void *ud, enum log_level lvl, const char *msg);
void log_set_sink(log_sink sink, void *ud);

#define log_debug(...) do { if (log_get_level() <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_get_level() <= LOG_INFO)  log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
