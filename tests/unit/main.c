/* main.c - the unit test runner (see unit.h).
 *
 *   unit_tests [--no-fork] [substring ...]
 *
 * Runs every registered test whose name contains one of the substrings (all
 * tests when none is given), in registration order (file, then line). By
 * default each test runs in a forked child, like libuv's runner: the child
 * reports an assertion failure through a pipe, a crash or sanitizer report
 * makes it exit abnormally, and a leak makes LeakSanitizer fail it at exit.
 * --no-fork (or UNIT_NOFORK=1) runs tests in-process, for debuggers. */
#include "unit.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct unit_test {
    const char *name, *file;
    int line;
    unit_fn fn;
} unit_test;

static unit_test *tests;
static size_t ntests, captests;

static bool in_child;      /* running inside a forked child */
static int fail_fd = -1;   /* child: where the failure message goes */
static jmp_buf fail_jmp;   /* --no-fork: where a failure returns to */
static char fail_msg[1024];
static void (*cleanup_fn)(void *);
static void *cleanup_arg;

void unit_on_fail(void (*fn)(void *), void *arg)
{
    cleanup_fn = fn;
    cleanup_arg = arg;
}

void unit_register(const char *name, const char *file, int line, unit_fn fn)
{
    if (ntests == captests) {
        captests = captests ? captests * 2 : 64;
        unit_test *t = realloc(tests, captests * sizeof *tests);
        if (!t) abort();
        tests = t;
    }
    tests[ntests++] = (unit_test){name, file, line, fn};
}

const char *unit_repr(const void *s, size_t n)
{
    static char out[512];
    const unsigned char *p = s;
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && o < sizeof out - 16; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            out[o++] = (char)p[i];
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", p[i]);
    }
    if (o >= sizeof out - 16) o += (size_t)snprintf(out + o, sizeof out - o, "...");
    out[o++] = '"';
    out[o] = 0;
    return out;
}

void unit_fail(const char *file, int line, const char *fmt, ...)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(fail_msg, sizeof fail_msg, "%s:%d: ", base, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof fail_msg) vsnprintf(fail_msg + n, sizeof fail_msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (cleanup_fn) {
        void (*fn)(void *) = cleanup_fn;
        cleanup_fn = NULL;
        fn(cleanup_arg);
    }
    if (in_child) {
        size_t len = strlen(fail_msg), off = 0;
        while (off < len) {
            ssize_t w = write(fail_fd, fail_msg + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
        _exit(1); /* no exit(): a failed test's leaks are not news */
    }
    longjmp(fail_jmp, 1);
}

static int by_position(const void *a, const void *b)
{
    const unit_test *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static bool selected(const unit_test *t, int argc, char **argv)
{
    bool any = false;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        any = true;
        if (strstr(t->name, argv[i])) return true;
    }
    return !any;
}

/* Runs one test in a child; returns true if it passed, else fills why. */
static bool run_forked(const unit_test *t, char *why, size_t whylen)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        in_child = true;
        fail_fd = fds[1];
        alarm(120);
        t->fn();
        exit(0); /* exit, not _exit: LeakSanitizer checks at exit */
    }
    close(fds[1]);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fds[0], why + got, whylen - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
        if (got == whylen - 1) break;
    }
    why[got] = 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, whylen, "waitpid: %s", strerror(errno));
            return false;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !got) return true;
    if (!got) {
        if (WIFSIGNALED(status))
            snprintf(why, whylen, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(why, whylen, "exit status %d (a sanitizer report or leak above?)", WEXITSTATUS(status));
    }
    return false;
}

static bool run_inline(const unit_test *t, char *why, size_t whylen)
{
    if (setjmp(fail_jmp)) {
        snprintf(why, whylen, "%s", fail_msg);
        return false;
    }
    t->fn();
    return true;
}

int main(int argc, char **argv)
{
    bool fork_each = !getenv("UNIT_NOFORK") || !strcmp(getenv("UNIT_NOFORK"), "0");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-fork")) {
            fork_each = false;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--no-fork] [name-substring ...]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    qsort(tests, ntests, sizeof *tests, by_position);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < ntests; i++) {
        const unit_test *t = &tests[i];
        if (!selected(t, argc, argv)) continue;
        char why[1024];
        cleanup_fn = NULL;
        bool ok = fork_each ? run_forked(t, why, sizeof why) : run_inline(t, why, sizeof why);
        if (ok) {
            passed++;
            printf("ok   %s\n", t->name);
        } else {
            failed++;
            printf("FAIL %s: %s\n", t->name, why);
        }
        fflush(stdout);
    }
    free(tests);
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout); /* before LeakSanitizer's exit-time check, which may _exit */
    return failed ? 1 : 0;
}
