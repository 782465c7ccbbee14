/* test_log.c - log_preview: what a message looks like in a log line. */
#include "unit.h"

#include "log.h"

TEST(log_preview_is_one_printable_line)
{
    static const struct {
        const char *in;
        size_t len, cap; /* len 0: strlen */
        const char *out;
    } cases[] = {
        {"hello", 0, 64, "hello"},
        {"two\nlines\r\tand \x1b[31m", 0, 64, "two\\x0alines\\x0d\\x09and \\x1b[31m"},
        {"a\\b", 0, 64, "a\\x5cb"},
        {"nul\0byte", 8, 64, "nul\\x00byte"},
        {"caf\xc3\xa9", 0, 64, "caf\xc3\xa9"},
        {"0123456789abcdef", 0, 16, "012345678..."},         /* room kept for an escape, "..." and NUL */
        {"0123456\xc3\xa9xyz", 0, 16, "0123456\xc3\xa9..."},
        {"01234567\xc3\xa9xyz", 0, 16, "01234567..."},         /* the cut would split the é: it goes whole */
        {"\n\n\n\n", 0, 16, "\\x0a\\x0a\\x0a..."},
        {"", 0, 16, ""},
        {"tiny", 0, 4, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64];
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        const char *got = log_preview(out, cases[i].cap, cases[i].in, len);
        ASSERT(got == out);
        ASSERT_MSG(strcmp(out, cases[i].out) == 0, "case %zu: \"%s\", expected \"%s\"", i, out, cases[i].out);
        ASSERT(strlen(out) < cases[i].cap || cases[i].cap == 0);
    }
}
