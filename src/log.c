/* log.c - one line per event on stderr: time, level, message.
 * Colour is used only when stderr is a terminal, so logs piped to a file or
 * read by tests stay plain text. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level current = LOG_INFO;
static int use_colour = -1;
static bool json;
static log_sink sink;
static void *sink_ud;

void log_set_sink(log_sink fn, void *ud)
{
    sink = fn;
    sink_ud = ud;
}

void log_set_json(bool on) { json = on; }

void log_set_level(enum log_level lvl) { current = lvl; }
enum log_level log_get_level(void) { return current; }

int log_parse_level(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

static void emit(enum log_level lvl, const char *fmt, va_list ap);

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (lvl < current || lvl >= LOG_OFF) return;
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, fmt, ap);
    va_end(ap);
}

void log_always(enum log_level lvl, const char *fmt, ...)
{
    if (lvl >= LOG_OFF) return;
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, fmt, ap);
    va_end(ap);
}

static void emit(enum log_level lvl, const char *fmt, va_list ap)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    static const char *colours[] = {"\033[2m", "\033[36m", "\033[33m", "\033[31m"};
    if (sink) {
        char msg[8192];
        vsnprintf(msg, sizeof msg, fmt, ap);
        sink(sink_ud, lvl, msg);
        return;
    }
    if (use_colour < 0) use_colour = isatty(2);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char ts[16];
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);

    if (json) {
        char msg[8192], esc[16400];
        vsnprintf(msg, sizeof msg, fmt, ap);
        size_t o = 0;
        for (const unsigned char *p = (const unsigned char *)msg; *p && o < sizeof esc - 8; p++) {
            if (*p == '"' || *p == '\\') o += (size_t)snprintf(esc + o, 3, "\\%c", *p);
            else if (*p == '\n') o += (size_t)snprintf(esc + o, 3, "\\n");
            else if (*p < 0x20) o += (size_t)snprintf(esc + o, 7, "\\u%04x", *p);
            else esc[o++] = (char)*p;
        }
        esc[o] = 0;
        fprintf(stderr, "{\"ts\":%lld.%03ld,\"level\":\"%s\",\"msg\":\"%s\"}\n", (long long)tv.tv_sec,
                (long)tv.tv_usec / 1000, tags[lvl], esc);
        return;
    }
    flockfile(stderr);
    if (use_colour)
        fprintf(stderr, "%s.%03ld %s%-5s\033[0m ", ts, (long)tv.tv_usec / 1000, colours[lvl], tags[lvl]);
    else
        fprintf(stderr, "%s.%03ld %-5s ", ts, (long)tv.tv_usec / 1000, tags[lvl]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
}

const char *log_preview(char *out, size_t cap, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t o = 0, i = 0;
    if (cap < 8) {
        if (cap) out[0] = 0;
        return out;
    }
    for (; i < len && o + 4 + 3 + 1 <= cap; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\') o += (size_t)snprintf(out + o, cap - o, "\\x%02x", p[i]);
        else out[o++] = (char)p[i];
    }
    if (i < len) {
        /* not inside a UTF-8 character: its bytes were copied one for one */
        while (i > 0 && (p[i] & 0xc0) == 0x80) i--, o--;
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
    return out;
}
