/* SPDX-License-Identifier: Apache-2.0 */
/* fam_strerror.c — the text for each FAM_E* code (include/fam/fam.h),
 * used by libfam's callers and by famd in the error replies it sends. */
#include "fam/fam.h"

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
