/* proxy/log.h: leveled logging to stderr, with a session-context variant. The level is the one
 * process-wide setting written outside the loops (at start and on reload). */
#pragma once
#include <stdbool.h>

#include "config/config.h"

struct session;

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the line with "[sess ID user@db]". */
void log_session(enum log_level level, const struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_ERR(...)  log_msg(LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define LOG_INFO(...) log_msg(LOG_INFO, __VA_ARGS__)
#define SLOG_DEBUG(s, ...)                            \
    do {                                              \
        if (log_enabled(LOG_DEBUG))                   \
            log_session(LOG_DEBUG, (s), __VA_ARGS__); \
    } while (0)
#define SLOG_INFO(s, ...)                            \
    do {                                             \
        if (log_enabled(LOG_INFO))                   \
            log_session(LOG_INFO, (s), __VA_ARGS__); \
    } while (0)
