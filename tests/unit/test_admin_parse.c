/* tests/unit/test_admin_parse.c: protocol/admin_parse.c: ';' splitting (quotes respected where a
 * word starts), words, '=' as a word, keyword matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/admin_parse.h"

/* The commands of text, joined with '|'. */
static void commands_of(const char *text, char *out, size_t cap)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    char *cursor = buf;
    out[0] = '\0';
    for (char *c = admin_next_command(&cursor); c; c = admin_next_command(&cursor)) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? "|" : "", c);
    }
}

static void test_commands(void **state)
{
    (void)state;
    char out[256];
    commands_of("SHOW STATUS; SET a = 1;", out, sizeof out);
    assert_string_equal("SHOW STATUS| SET a = 1", out);
    commands_of("SET x = 'a;b'; RELOAD", out, sizeof out);
    assert_string_equal("SET x = 'a;b'| RELOAD", out);
    commands_of("SET x='a;b';PAUSE", out, sizeof out);
    assert_string_equal("SET x='a;b'|PAUSE", out);
    /* a quote inside a word opens nothing (admin_split reads it as part of the word): the
     * ROLLBACK after it is a command of its own, as before */
    commands_of("SET read_new_percent = 0'; ROLLBACK CUTOVER", out, sizeof out);
    assert_string_equal("SET read_new_percent = 0'| ROLLBACK CUTOVER", out);
    char empties[] = ";;";
    char *cursor = empties;
    assert_string_equal("", admin_next_command(&cursor));
    assert_string_equal("", admin_next_command(&cursor));
    assert_null(admin_next_command(&cursor));
    commands_of("", out, sizeof out);
    assert_string_equal("", out);
}

static void test_split(void **state)
{
    (void)state;
    char text[] = "SET primary=new FORCE";
    char *argv[ADMIN_MAX_WORDS];
    assert_int_equal(5, admin_split(text, argv, ADMIN_MAX_WORDS));
    assert_string_equal("SET", argv[0]);
    assert_string_equal("primary", argv[1]);
    assert_string_equal("=", argv[2]);
    assert_string_equal("new", argv[3]);
    assert_string_equal("FORCE", argv[4]);
    char quoted[] = "SET x = 'a b' \"c\"";
    assert_int_equal(5, admin_split(quoted, argv, ADMIN_MAX_WORDS));
    assert_string_equal("a b", argv[3]);
    assert_string_equal("c", argv[4]);
    char open[] = "SET x = 'a";
    assert_int_equal(-1, admin_split(open, argv, ADMIN_MAX_WORDS));
    char many[] = "a b c d e f g h i";
    assert_int_equal(-1, admin_split(many, argv, ADMIN_MAX_WORDS));
    char blank[] = "   ";
    assert_int_equal(0, admin_split(blank, argv, ADMIN_MAX_WORDS));
}

static void test_match(void **state)
{
    (void)state;
    static const char *const show_status[ADMIN_CMD_WORDS] = {"SHOW", "STATUS", NULL};
    static const char *const set[ADMIN_CMD_WORDS] = {"SET", NULL, NULL};
    char text[] = "show Status extra";
    char *argv[ADMIN_MAX_WORDS];
    int argc = admin_split(text, argv, ADMIN_MAX_WORDS);
    assert_int_equal(2, admin_keywords_match(show_status, argv, argc));
    assert_int_equal(-1, admin_keywords_match(set, argv, argc));
    char shorter[] = "SHOW";
    argc = admin_split(shorter, argv, ADMIN_MAX_WORDS);
    assert_int_equal(-1, admin_keywords_match(show_status, argv, argc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
