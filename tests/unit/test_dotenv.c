/* test_dotenv.c - the .env format (src/dotenv.c): what each line means,
 * and which line a bad file is refused at (never quoting a value). */
#include "unit.h"

#include "buf.h"
#include "dotenv.h"

#include <stdlib.h>

static void collect(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    buf *b = ud;
    buf_append(b, key, klen);
    buf_appendstr(b, "=[");
    buf_append(b, val, vlen);
    buf_appendstr(b, "]");
}

/* "K=[V]K2=[V2]" for a good file, "error: line N: ..." for a bad one. */
static char *parse(const char *text)
{
    buf b;
    buf_init(&b);
    char *err = NULL;
    if (dotenv_parse(text, strlen(text), collect, &b, &err) != 0) {
        buf_free(&b);
        buf_printf(&b, "error: %s", err);
        free(err);
    }
    buf_appendstr(&b, "");
    return buf_steal(&b);
}

TEST(dotenv_lines_mean_what_dotenv_says)
{
    static const struct { const char *in, *out; } cases[] = {
        {"", ""},
        {"A=1", "A=[1]"},
        {"A=1\nB=two words\n", "A=[1]B=[two words]"},
        {"  A =  spaced out  \t\n", "A=[spaced out]"},
        {"A=1\r\nB=2\r\n", "A=[1]B=[2]"},
        {"# comment\n\n   # indented comment\nA=1 # trailing comment", "A=[1]"},
        {"A=x#y", "A=[x]"},
        {"export A=1\nexport\tB=2", "A=[1]B=[2]"},
        {"export=3", "export=[3]"},
        {"A=", "A=[]"},
        {"A=\nB=2", "A=[]B=[2]"},
        {"A=\"q\\nn\\rr\"", "A=[q\nn\rr]"},
        {"A='q\\nn'", "A=[q\\nn]"},
        {"A=`back # not a comment`", "A=[back # not a comment]"},
        {"A=\"has # hash\"  # comment", "A=[has # hash]"},
        {"A=\"say \\\"hi\\\"\"", "A=[say \\\"hi\\\"]"},
        {"A=\"multi\nline\"\nB=after", "A=[multi\nline]B=[after]"},
        {"A=1\nA=2", "A=[1]A=[2]"},
        {"dotted.key-name_1=v", "dotted.key-name_1=[v]"},
        {"A=caf\xc3\xa9 \xff", "A=[caf\xc3\xa9 \xff]"},
        {"\xef\xbb\xbf" "A=1", "A=[1]"},
        {"A=1\nnot a line\n", "error: line 2: expected NAME=VALUE (a name is letters, digits, '_', '.' and '-')"},
        {"=1", "error: line 1: expected NAME=VALUE (a name is letters, digits, '_', '.' and '-')"},
        {"A:1", "error: line 1: expected NAME=VALUE (a name is letters, digits, '_', '.' and '-')"},
        {"A=1\nB", "error: line 2: expected NAME=VALUE (a name is letters, digits, '_', '.' and '-')"},
        {"A=1\nSECRET=\"s3cr3t\nmore", "error: line 2: the value of SECRET has no closing \""},
        {"A=1\nB=\"x\ny\"\nC='open", "error: line 4: the value of C has no closing '"},
        {"A='s3cr3t' junk", "error: line 1: text after the closing quote (a comment starts with '#')"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = parse(cases[i].in);
        ASSERT_MSG(strcmp(got, cases[i].out) == 0, "case %zu: %s -> %s, expected %s", i,
                   unit_repr(cases[i].in, strlen(cases[i].in)), unit_repr(got, strlen(got)), cases[i].out);
        ASSERT_MSG(!strstr(got, "s3cr3t") || strncmp(got, "error", 5) != 0, "case %zu: an error quotes a value", i);
        free(got);
    }
}

TEST(dotenv_valid_key_names)
{
    ASSERT(dotenv_valid_key("API_KEY", 7));
    ASSERT(dotenv_valid_key("a.b-c", 5));
    ASSERT(!dotenv_valid_key("", 0));
    ASSERT(!dotenv_valid_key("A B", 3));
    ASSERT(!dotenv_valid_key("A=B", 3));
    ASSERT(!dotenv_valid_key("caf\xc3\xa9", 5));
}
