/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging to stderr, one line per call, with time, level and program name. Lines from
 * several threads never interleave (one write per line).
 */
#ifndef SHOAL_LOG_H
#define SHOAL_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *progname, enum log_level level);
/* Parses "error", "warn", "info" or "debug"; returns -EINVAL for anything else. */
int log_parse_level(const char *s, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern enum log_level log_level_current;

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_level_current >= LOG_LVL_DEBUG)                                            \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                       \
	} while (0)

#endif
