/* tests/unit/test_conninfo.c: config/conninfo.c: passwords masked in keyword/value conninfo
 * (bare and quoted values, escaped quotes, spaces) and in URIs (userinfo and query), the rest
 * kept as written, truncation never showing a secret; config_format masks [backends]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/conninfo.h"

static void check(const char *in, const char *want)
{
    char out[512];
    assert_true(conninfo_mask(in, out, sizeof out));
    assert_string_equal(out, want);
}

static void test_keyword_value(void **state)
{
    (void)state;
    check("host=127.0.0.1 port=5432", "host=127.0.0.1 port=5432");
    check("host=h password=s3cret user=u", "host=h password=******** user=u");
    check("password=s3cret", "password=********");
    check("host=h password = s3cret dbname=d", "host=h password = ******** dbname=d");
    check("  host=h\tpassword=x  ", "  host=h\tpassword=********  ");
    check("PASSWORD=x sslpassword=y", "PASSWORD=******** sslpassword=********");
    check("passfile=/p sslkey=/k", "passfile=/p sslkey=/k"); /* paths, not secrets */
    check("", "");
}

static void test_quoted(void **state)
{
    (void)state;
    check("host=h password='a b c' user=u", "host=h password=******** user=u");
    check("password='it\\'s a secret' user=u", "password=******** user=u");
    check("password='back\\\\slash' user=u", "password=******** user=u");
    check("application_name='my app' password=''", "application_name='my app' password=********");
    check("password=no\\ space user=u", "password=******** user=u"); /* escaped blank */
    /* An unterminated quote: everything after the key is the secret. */
    check("user=u password='open user=v", "user=u password=********");
    check("user='it\\'s' host=h", "user='it\\'s' host=h");
}

static void test_uri(void **state)
{
    (void)state;
    check("postgresql://u:pw@h:5432/db", "postgresql://u:********@h:5432/db");
    check("postgres://u:p%40w@h/db?sslmode=require", "postgres://u:********@h/db?sslmode=require");
    check("postgresql://u@h/db", "postgresql://u@h/db");
    check("postgresql://h/db?user=u&password=pw&sslmode=disable",
          "postgresql://h/db?user=u&password=********&sslmode=disable");
    check("postgresql://u:pw@h/db?password=two", "postgresql://u:********@h/db?password=********");
    check("postgresql:///db", "postgresql:///db");
    check("POSTGRESQL://u:pw@h", "POSTGRESQL://u:********@h");
}

static void test_truncation(void **state)
{
    (void)state;
    char out[16];
    assert_false(conninfo_mask("host=h password=verysecretvalue", out, sizeof out));
    assert_int_equal(strlen(out), sizeof out - 1);
    assert_null(strstr(out, "very"));
    assert_false(conninfo_mask("password=abc", out, 0));
}

static void test_config_format(void **state)
{
    (void)state;
    struct config c;
    config_init_defaults(&c);
    char err[256], val[256];
    const struct config_key *k = config_find_key("backends", "old");
    assert_non_null(k);
    assert_true(config_key_secret(k));
    assert_int_equal(config_set(&c, k, "host=h password='x y' port=1", err, sizeof err), 0);
    config_format(&c, k, val, sizeof val);
    assert_string_equal(val, "host=h password=******** port=1");
    assert_string_equal(c.backend_old, "host=h password='x y' port=1"); /* the value itself */
    k = config_find_key("pgdual", "listen_addr");
    assert_false(config_key_secret(k));
    config_free(&c);
}

static void test_error_safe(void **state)
{
    (void)state;
    assert_true(conninfo_error_safe("invalid connection option \"foo\"\n"));
    assert_true(conninfo_error_safe("unterminated quoted string in connection info string\n"));
    assert_false(conninfo_error_safe("missing \"=\" after \"secret\" in connection info string\n"));
    assert_false(conninfo_error_safe("invalid URI query parameter: \"x\"\n"));
    assert_false(conninfo_error_safe(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyword_value), cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_uri),           cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_config_format), cmocka_unit_test(test_error_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
