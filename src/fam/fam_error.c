/* SPDX-License-Identifier: Apache-2.0 */
/* fam_error.c — the per-thread last-error message (the text for each
 * code, fam_strerror, is in src/common/fam_strerror.c: famd uses it too). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fam/fam.h"
#include "fam_internal.h"

static _Thread_local char last_error[1024];

const char *fam_last_error(void) { return last_error; }

/* Both format into a scratch buffer first: an argument may be
 * fam_last_error() itself ("...: %s", fam_last_error()), and vsnprintf
 * into the buffer it reads from is undefined (seen: the message repeated
 * three times). */
int fam_fail(int code, const char *fmt, ...)
{
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return code;
}

void fam_clear_error(void) { last_error[0] = '\0'; }

int fam_set_error(int code, const char *fmt, ...)
{
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    if (fmt) vsnprintf(msg, sizeof msg, fmt, ap);
    else msg[0] = '\0';
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return code;
}
