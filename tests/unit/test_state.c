/* tests/unit/test_state.c: config/state.c: round trip, truncation at every byte, bad checksum,
 * unknown key, bad values, the atomic writer's files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/state.h"

static struct dials default_dials(void)
{
    struct config c;
    config_init_defaults(&c);
    struct dials d = c.dials;
    config_free(&c);
    return d;
}

/* Every field away from its default, so a round trip proves each one is carried. */
static struct dials changed_dials(void)
{
    struct dials d = default_dials();
    d.primary = DIAL_NEW;
    d.read_new_percent = 25;
    d.compare_percent = 7;
    d.mirror_order = MIRROR_PARALLEL;
    d.commit_wait = COMMIT_WAIT_PRIMARY;
    d.on_read_divergence = ON_DIVERGENCE_SERVE_PRIMARY;
    d.read_timeout_ms = 1234;
    d.shadow_timeout_ms = 4321;
    d.fallback_buffer_bytes = 99;
    d.mirror = false;
    return d;
}

static void assert_dials_equal(const struct dials *a, const struct dials *b)
{
    assert_int_equal(a->primary, b->primary);
    assert_int_equal(a->read_new_percent, b->read_new_percent);
    assert_int_equal(a->compare_percent, b->compare_percent);
    assert_int_equal(a->mirror_order, b->mirror_order);
    assert_int_equal(a->commit_wait, b->commit_wait);
    assert_int_equal(a->on_read_divergence, b->on_read_divergence);
    assert_int_equal(a->read_timeout_ms, b->read_timeout_ms);
    assert_int_equal(a->shadow_timeout_ms, b->shadow_timeout_ms);
    assert_int_equal(a->fallback_buffer_bytes, b->fallback_buffer_bytes);
    assert_int_equal(a->mirror, b->mirror);
}

/* text followed by its checksum line, so only the property under test is wrong. */
static size_t seal(const char *body, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%schecksum = %016llx\n", body,
                     (unsigned long long)state_checksum(body, strlen(body)));
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void expect_parse_error(const char *text, size_t len, const char *needle)
{
    struct dials d = default_dials(), before = d;
    char err[256] = "";
    assert_true(state_parse(text, len, &d, NULL, err, sizeof(err)) < 0);
    if (!strstr(err, needle)) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
    }
    assert_dials_equal(&d, &before); /* nothing applied from a refused file */
}

static void test_round_trip(void **state)
{
    (void)state;
    struct dials in = changed_dials(), out = default_dials();
    char buf[4096];
    int len = state_format(&in, NULL, buf, sizeof(buf));
    assert_true(len > 0);
    assert_int_equal((size_t)len, strlen(buf));
    assert_non_null(strstr(buf, "\nprimary = new\n"));
    assert_non_null(strstr(buf, "\nread_new_percent = 25\n"));
    assert_non_null(strstr(buf, "\nmirror = off\n"));
    char err[256] = "";
    assert_int_equal(state_parse(buf, (size_t)len, &out, NULL, err, sizeof(err)), 0);
    assert_dials_equal(&in, &out);
    /* Too small a buffer is an error, not a cut file. */
    assert_int_equal(state_format(&in, NULL, buf, 40), -ENOSPC);
}

/* The secondary's sync state rides along: written, read back, absent in older files, and a
 * malformed or repeated line refuses the whole file. */
static void test_secondary_state(void **state)
{
    (void)state;
    struct dials in = changed_dials(), out = default_dials();
    struct state_secondary sec = {.name = "diverged", .since_ms = 1796000000123};
    struct state_secondary got = {.name = "junk", .since_ms = 7};
    char buf[4096], err[256] = "";
    int len = state_format(&in, &sec, buf, sizeof(buf));
    assert_true(len > 0);
    assert_non_null(strstr(buf, "\nsecondary_state = diverged\nsecondary_since = 1796000000123\n"));
    assert_int_equal(state_parse(buf, (size_t)len, &out, &got, err, sizeof(err)), 0);
    assert_string_equal(got.name, "diverged");
    assert_int_equal(got.since_ms, 1796000000123);
    assert_dials_equal(&in, &out);

    len = state_format(&in, NULL, buf, sizeof(buf)); /* no secondary lines: empty name */
    assert_null(strstr(buf, "secondary_state"));
    assert_int_equal(state_parse(buf, (size_t)len, &out, &got, err, sizeof(err)), 0);
    assert_string_equal(got.name, "");

    /* The last reconciliation pass id rides along once there is one. */
    assert_null(strstr(buf, "secondary_pass"));
    sec.pass = 42;
    len = state_format(&in, &sec, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\nsecondary_pass = 42\n"));
    assert_int_equal(state_parse(buf, (size_t)len, &out, &got, err, sizeof(err)), 0);
    assert_int_equal(got.pass, 42);

    static const char *const bad[] = {"secondary_state = Diverged\n",
                                      "secondary_state = \n",
                                      "secondary_since = -5\n",
                                      "secondary_since = 12x\n",
                                      "secondary_state = a\nsecondary_state = b\n",
                                      "secondary_pass = -1\n",
                                      "secondary_pass = 1x\n",
                                      "secondary_pass = \n",
                                      "secondary_pass = 1\nsecondary_pass = 2\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        int n = snprintf(text, sizeof(text), "version = 1\n%s", bad[i]);
        n += snprintf(text + n, sizeof(text) - (size_t)n, "checksum = %016llx\n",
                      (unsigned long long)state_checksum(text, (size_t)n));
        strcpy(got.name, "kept");
        assert_true(state_parse(text, (size_t)n, &out, &got, err, sizeof(err)) < 0);
        assert_string_equal(got.name, "kept");
    }
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    struct dials in = changed_dials();
    char buf[4096];
    int len = state_format(&in, NULL, buf, sizeof(buf));
    assert_true(len > 0);
    for (int cut = 0; cut < len; cut++) {
        struct dials d = default_dials(), before = d;
        char err[256] = "";
        if (state_parse(buf, (size_t)cut, &d, NULL, err, sizeof(err)) == 0) {
            fail_msg("a file cut to %d of %d bytes was accepted", cut, len);
        }
        assert_true(err[0] != '\0');
        assert_dials_equal(&d, &before);
    }
    /* The usual torn write: every dial line there, the end marker missing. */
    const char *cut_at = strstr(buf, "checksum = ");
    assert_non_null(cut_at);
    expect_parse_error(buf, (size_t)(cut_at - buf), "end marker");
}

static void test_bad_checksum(void **state)
{
    (void)state;
    struct dials in = changed_dials();
    char buf[4096];
    int len = state_format(&in, NULL, buf, sizeof(buf));
    char *v = strstr(buf, "read_new_percent = 25");
    assert_non_null(v);
    v[strlen("read_new_percent = 2")] = '6'; /* a valid value, but not what was sealed */
    expect_parse_error(buf, (size_t)len, "bad checksum");
    /* A malformed checksum line. */
    char text[256];
    snprintf(text, sizeof(text), "version = 1\nchecksum = xyz\n");
    expect_parse_error(text, strlen(text), "checksum");
    /* Something after the checksum line: the end marker is not the last line. */
    size_t n = seal("version = 1\n", text, sizeof(text));
    memcpy(text + n, "mirror = on\n", 13);
    expect_parse_error(text, n + 12, "end marker");
}

static void test_unknown_key_and_bad_values(void **state)
{
    (void)state;
    char text[512];
    size_t n = seal("version = 1\nprimary = new\nno_such_dial = 3\n", text, sizeof(text));
    expect_parse_error(text, n, "line 3: unknown key \"no_such_dial\"");
    /* A config key that is not a dial is unknown here too. */
    n = seal("version = 1\nlisten_port = 1\n", text, sizeof(text));
    expect_parse_error(text, n, "unknown key \"listen_port\"");
    n = seal("version = 1\nread_new_percent = 101\n", text, sizeof(text));
    expect_parse_error(text, n, "read_new_percent");
    n = seal("version = 1\nprimary = banana\n", text, sizeof(text));
    expect_parse_error(text, n, "primary");
    n = seal("version = 1\nprimary = new\nprimary = old\n", text, sizeof(text));
    expect_parse_error(text, n, "given twice");
    n = seal("version = 2\n", text, sizeof(text));
    expect_parse_error(text, n, "version");
    n = seal("primary = new\n", text, sizeof(text));
    expect_parse_error(text, n, "version");
    n = seal("version = 1\njust words\n", text, sizeof(text));
    expect_parse_error(text, n, "line 2");
    expect_parse_error("", 0, "empty");
}

static void test_missing_keys_keep_value(void **state)
{
    (void)state;
    char text[256];
    size_t n = seal("# comment\nversion = 1\nread_new_percent = 40\n", text, sizeof(text));
    struct dials d = changed_dials();
    char err[256] = "";
    assert_int_equal(state_parse(text, n, &d, NULL, err, sizeof(err)), 0);
    assert_int_equal(d.read_new_percent, 40);
    assert_int_equal(d.primary, DIAL_NEW); /* not in the file: unchanged */
    assert_int_equal(d.compare_percent, 7);
}

static void test_save_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/pgdual-test-state.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], tmp[300];
    snprintf(path, sizeof(path), "%s/pgdual.state", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    char err[512] = "";
    struct dials d = default_dials();
    assert_int_equal(state_load(path, &d, NULL, err, sizeof(err)), 0); /* absent: not an error */

    struct dials in = changed_dials();
    assert_int_equal(state_save(path, &in, NULL, err, sizeof(err)), 0);
    assert_int_equal(access(tmp, F_OK), -1); /* the temp file was renamed away */
    struct dials out = default_dials();
    assert_int_equal(state_load(path, &out, NULL, err, sizeof(err)), 1);
    assert_dials_equal(&in, &out);

    /* Overwrite with other values. */
    in.read_new_percent = 50;
    assert_int_equal(state_save(path, &in, NULL, err, sizeof(err)), 0);
    assert_int_equal(state_load(path, &out, NULL, err, sizeof(err)), 1);
    assert_int_equal(out.read_new_percent, 50);

    /* Truncate the file on disk: the load names the file and the problem. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 5), 0);
    assert_true(state_load(path, &out, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "corrupt"));

    /* A directory that does not exist: the save fails and says so. */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing/pgdual.state", dir);
    assert_true(state_save(bad, &in, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, bad));

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_secondary_state),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_bad_checksum),
        cmocka_unit_test(test_unknown_key_and_bad_values),
        cmocka_unit_test(test_missing_keys_keep_value),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
