/* proxy/log.c: stderr logging; one line per call, written with a single write(). */
#include "proxy/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/session/session.h"
#include "proxy/text.h"

static atomic_int log_level = LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARNING", "LOG", "DEBUG"};

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

static void log_write(enum log_level level, const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03ld UTC %s %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], prefix);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    /* A message may carry bytes a client chose (a backend's "role ... does not exist" echoes the
     * user name): its control bytes are escaped, so one call stays one line. */
    char msg[sizeof(line)];
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
        return;
    }
    int m =
        (int)strlen(text_escape(msg, line + n, sizeof(line) - (size_t)n - 1, TEXT_ESC_CONTROLS));
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nothing sensible to do when stderr is gone */
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_write(level, "", fmt, ap);
    va_end(ap);
}

void log_session(enum log_level level, const struct session *s, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    /* The names come from the client's startup packet: escaped, so a line stays one line. */
    char user[TEXT_NAME_ESC_MAX], db[TEXT_NAME_ESC_MAX], prefix[2 * TEXT_NAME_ESC_MAX + 32];
    text_escape(s->user[0] ? s->user : "-", user, sizeof(user), TEXT_ESC_NAME);
    text_escape(s->database[0] ? s->database : "-", db, sizeof(db), TEXT_ESC_NAME);
    snprintf(prefix, sizeof(prefix), "[sess %u %s@%s] ", s->id, user, db);
    va_list ap;
    va_start(ap, fmt);
    log_write(level, prefix, fmt, ap);
    va_end(ap);
}
