/* tests/unit/test_userlist.c: config/userlist.c: quoting, comments, errors naming file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/userlist.h"

#ifndef PGDUAL_TEST_DATA
#error "PGDUAL_TEST_DATA must name tests/data"
#endif

static struct userlist *parse_ok(const char *text)
{
    struct userlist *ul = NULL;
    char err[256] = "";
    int rc = userlist_parse(text, strlen(text), "t.txt", &ul, err, sizeof err);
    if (rc != 0) {
        fail_msg("parse failed (%d): %s", rc, err);
    }
    assert_non_null(ul);
    return ul;
}

static void assert_entry(const struct userlist *ul, const char *user, const char *password)
{
    const struct userlist_entry *e = userlist_find(ul, user);
    if (e == NULL) {
        fail_msg("user \"%s\" not found", user);
    }
    assert_string_equal(e->user, user);
    assert_string_equal(e->password, password);
}

static void test_basic(void **state)
{
    (void)state;
    struct userlist *ul = parse_ok("\"alice\" \"pw1\"\n\"bob\" \"SCRAM-SHA-256$x\"\n");
    assert_int_equal(ul->count, 2);
    assert_string_equal(ul->entries[0].user, "alice"); /* file order is kept */
    assert_string_equal(ul->entries[1].user, "bob");
    assert_entry(ul, "alice", "pw1");
    assert_entry(ul, "bob", "SCRAM-SHA-256$x");
    assert_null(userlist_find(ul, "carol"));
    assert_null(userlist_find(ul, "alic"));
    assert_null(userlist_find(ul, NULL));
    assert_null(userlist_find(NULL, "alice"));
    userlist_free(ul);
    userlist_free(NULL);
}

static void test_quotes(void **state)
{
    (void)state;
    struct userlist *ul = parse_ok("\"o\"\"brien\" \"pa\"\"ss\"\n"
                                   "\"\"\"\" \"\"\"\"\"\"\n"
                                   "\"sp ace\" \"a b ; # c\"\n"
                                   "\"empty\" \"\"\n");
    assert_int_equal(ul->count, 4);
    assert_entry(ul, "o\"brien", "pa\"ss");
    assert_entry(ul, "\"", "\"\"");
    assert_entry(ul, "sp ace", "a b ; # c");
    assert_entry(ul, "empty", "");
    userlist_free(ul);
}

static void test_comments_blanks_whitespace(void **state)
{
    (void)state;
    struct userlist *ul = parse_ok("; comment\n"
                                   "# another \"x\" \"y\"\n"
                                   "\n"
                                   "   \t \n"
                                   "  ; indented comment\n"
                                   "\t\"tab\"\t\t\"sep\"  \r\n"
                                   "\"crlf\" \"line\"\r\n"
                                   "\"last\" \"no newline\"");
    assert_int_equal(ul->count, 3);
    assert_entry(ul, "tab", "sep");
    assert_entry(ul, "crlf", "line");
    assert_entry(ul, "last", "no newline");
    userlist_free(ul);
    ul = parse_ok("");
    assert_int_equal(ul->count, 0);
    userlist_free(ul);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *err;
    } cases[] = {
        {"\"u\" \"p\"\n\nbad\n", "t.txt:3: expected a double-quoted string"},
        {"\"u\" \"p", "t.txt:1: unterminated double-quoted string"},
        {"\"u\"\n", "t.txt:1: expected white space and a double-quoted password after the user "
                    "name"},
        {"\"u\" \n", "t.txt:1: expected a double-quoted string"},
        {"\"u\"\"p\"\n", "t.txt:1: expected white space"},
        {"\"u\"x \"p\"\n", "t.txt:1: expected white space"},
        {"\"u\" \"p\" extra\n", "t.txt:1: unexpected text after the password"},
        {"\"u\" \"p\" \"q\"\n", "t.txt:1: unexpected text after the password"},
        {"u p\n", "t.txt:1: expected a double-quoted string"},
        {"\"\" \"p\"\n", "t.txt:1: empty user name"},
        {"; c\n\"u\" \"a\"\n\"v\" \"b\"\n\"u\" \"c\"\n", "t.txt:4: duplicate user name"},
        {"\"u\" \"p\n\"v\" \"q\"\n", "t.txt:1: unterminated double-quoted string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct userlist *ul = NULL;
        char err[256] = "";
        int rc =
            userlist_parse(cases[i].text, strlen(cases[i].text), "t.txt", &ul, err, sizeof err);
        if (rc >= 0 || strncmp(err, cases[i].err, strlen(cases[i].err)) != 0) {
            fail_msg("case %zu: rc %d err \"%s\", want \"%s\"", i, rc, err, cases[i].err);
        }
        assert_null(ul);
    }
}

static void test_bounds(void **state)
{
    (void)state;
    static char big[6000];
    struct userlist *ul = NULL;
    char err[128] = "";
    memset(big, 'a', sizeof big);
    big[0] = '"';
    memcpy(big + 10, "\" \"", 3);
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = '\n';
    assert_true(userlist_parse(big, sizeof big, "big", &ul, err, sizeof err) < 0);
    assert_string_equal(err, "big:1: line too long");
    assert_null(ul);
    static const char nul[] = "\"u\" \"p\"\n\"a\0b\" \"p\"\n";
    assert_true(userlist_parse(nul, sizeof nul - 1, "nul", &ul, err, sizeof err) < 0);
    assert_string_equal(err, "nul:2: NUL byte in line");
    /* err is optional; a tiny err buffer truncates but stays terminated */
    assert_true(userlist_parse("x", 1, "n", &ul, NULL, 0) < 0);
    assert_true(userlist_parse("x", 1, "name", &ul, err, 4) < 0);
    assert_string_equal(err, "nam");
}

static void test_long_fields_ok(void **state)
{
    (void)state;
    static char line[4000];
    struct userlist *ul = NULL;
    char err[128] = "";
    memset(line, 'p', sizeof line);
    memcpy(line, "\"u\" \"", 5);
    line[sizeof line - 1] = '"';
    assert_int_equal(userlist_parse(line, sizeof line, "l", &ul, err, sizeof err), 0);
    assert_int_equal(strlen(userlist_find(ul, "u")->password), sizeof line - 6);
    userlist_free(ul);
}

static void test_many_entries(void **state)
{
    (void)state;
    static char text[64 * 1000];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "\"user%d\" \"pw%d\"\n", i, i);
    }
    struct userlist *ul = parse_ok(text);
    assert_int_equal(ul->count, 1000);
    assert_entry(ul, "user0", "pw0");
    assert_entry(ul, "user999", "pw999");
    userlist_free(ul);
}

static void test_load(void **state)
{
    (void)state;
    struct userlist *ul = NULL;
    char err[512] = "";
    int rc = userlist_load(PGDUAL_TEST_DATA "/userlist/ok.txt", &ul, err, sizeof err);
    if (rc != 0) {
        fail_msg("load: %d %s", rc, err);
    }
    assert_int_equal(ul->count, 4);
    assert_entry(ul, "alice", "plain secret");
    assert_entry(ul, "o\"brien", "say \"hi\"");
    assert_entry(ul, "carol", "md5a8c3f0c5d5e1b7f5bd0e7c2e6b2a3f11");
    assert_memory_equal(userlist_find(ul, "bob")->password, "SCRAM-SHA-256$4096:", 19);
    userlist_free(ul);
    ul = NULL;
    rc = userlist_load(PGDUAL_TEST_DATA "/userlist/bad_line4.txt", &ul, err, sizeof err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "bad_line4.txt:4: unterminated"));
    assert_null(ul);
    rc = userlist_load(PGDUAL_TEST_DATA "/userlist/missing.txt", &ul, err, sizeof err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "missing.txt: "));
    assert_null(ul);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_comments_blanks_whitespace),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_long_fields_ok),
        cmocka_unit_test(test_many_entries),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
