/* tests/unit/test_text.c: proxy/text.c: text_escape makes a client-supplied name one safe log
 * token (control bytes, backslash, optionally quotes escaped; cut at a whole escape). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/text.h"

static void test_escape(void **state)
{
    (void)state;
    char out[TEXT_NAME_ESC_MAX];
    assert_string_equal(text_escape("alice", out, sizeof out, TEXT_ESC_QUOTED), "alice");
    assert_string_equal(text_escape("a\nb", out, sizeof out, TEXT_ESC_NAME), "a\\nb");
    assert_string_equal(text_escape("a\r\tb", out, sizeof out, TEXT_ESC_NAME), "a\\r\\tb");
    assert_string_equal(text_escape("q\"x", out, sizeof out, TEXT_ESC_QUOTED), "q\\\"x");
    assert_string_equal(text_escape("q\"x", out, sizeof out, TEXT_ESC_NAME), "q\"x");
    assert_string_equal(text_escape("back\\slash", out, sizeof out, TEXT_ESC_NAME),
                        "back\\\\slash");
    assert_string_equal(text_escape("\x01\x1b\x7f", out, sizeof out, TEXT_ESC_NAME),
                        "\\x01\\x1b\\x7f");
    assert_string_equal(text_escape("caf\xc3\xa9", out, sizeof out, TEXT_ESC_NAME), "caf\xc3\xa9");
    assert_string_equal(text_escape(NULL, out, sizeof out, TEXT_ESC_NAME), "");
    assert_null(strchr(text_escape("x\ny\nz", out, sizeof out, TEXT_ESC_NAME), '\n'));
    /* a log line: control bytes only, backslashes and quotes as written */
    assert_string_equal(text_escape("a\\b \"c\"\nd", out, sizeof out, TEXT_ESC_CONTROLS),
                        "a\\b \"c\"\\nd");
}

static void test_escape_bounds(void **state)
{
    (void)state;
    char out[8];
    assert_string_equal(text_escape("abcdefg", out, sizeof out, TEXT_ESC_NAME), "abcdefg");
    assert_string_equal(text_escape("abcdefgh", out, sizeof out, TEXT_ESC_NAME), "abcd...");
    /* never half an escape */
    assert_string_equal(text_escape("abc\n\n\n", out, sizeof out, TEXT_ESC_NAME), "abc...");
    char tiny[3];
    assert_string_equal(text_escape("abcdef", tiny, sizeof tiny, TEXT_ESC_NAME), "..");
    /* 63 newlines (the longest name) fit TEXT_NAME_ESC_MAX whole */
    char name[64], big[TEXT_NAME_ESC_MAX];
    memset(name, '\n', 63);
    name[63] = '\0';
    assert_int_equal(strlen(text_escape(name, big, sizeof big, TEXT_ESC_NAME)), 126);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
