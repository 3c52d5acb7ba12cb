/* fam_error.c — error codes and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fam/fam.h"
#include "fam_internal.h"

static _Thread_local char last_error[1024];

const char *fam_strerror(int code)
{
    switch (code) {
    case FAM_OK: return "success";
    case FAM_EINVAL: return "invalid argument";
    case FAM_ENOTFOUND: return "not found";
    case FAM_EEXIST: return "already exists";
    case FAM_EPERM: return "permission denied";
    case FAM_EOUTOFRANGE: return "out of range";
    case FAM_ENOSPACE: return "no space left";
    case FAM_EUNREACHABLE: return "memory server unreachable";
    case FAM_EPROTO: return "protocol error";
    case FAM_ENOMEM: return "out of memory";
    case FAM_EFABRIC: return "fabric error";
    case FAM_ENOTSUP: return "not supported";
    case FAM_EBUSY: return "busy";
    case FAM_EIO: return "I/O error or damaged data";
    case FAM_ETIMEOUT: return "timed out";
    default: return "unknown error";
    }
}

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
