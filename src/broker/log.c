/* Broker logging: one line per event on stderr, with time and level. */
#include "broker/broker_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const names[] = {"error", "warn", "info", "debug", "trace"};

int
lepi_log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (s && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void
lepi_log(broker_t *b, int level, const char *fmt, ...)
{
    if (!b || level > b->log_level)
        return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one write per line keeps lines whole across threads */
    pthread_mutex_lock(&b->log_lock);
    fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&b->log_lock);
}
