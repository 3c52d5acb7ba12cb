/* SPDX-License-Identifier: Apache-2.0 */
/* fam_cpu_atomic.h — one element's atomic update with the CPU's atomic
 * instructions, shared by famd (bulk atomics next to the memory) and
 * libfam (the same-host fast path), so that both update FAM the same way
 * and are atomic with respect to each other.
 *
 * Integers use fetch-and-op instructions (add wraps as unsigned, as C
 * does); min/max and floating point use a compare-and-swap loop. */
#ifndef FAM_CPU_ATOMIC_H
#define FAM_CPU_ATOMIC_H

#include <stdint.h>
#include <string.h>

#include "fam/fam.h"

#define FAM_CPU_INT_(T, p, op, v, oldp)                                       \
    do {                                                                      \
        T o_;                                                                 \
        switch (op) {                                                         \
        case FAM_AOP_SET: o_ = __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); break; \
        case FAM_AOP_ADD: o_ = __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); break; \
        case FAM_AOP_AND: o_ = __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); break; \
        case FAM_AOP_OR: o_ = __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); break;   \
        case FAM_AOP_XOR: o_ = __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); break; \
        default: /* MIN, MAX */                                               \
            o_ = __atomic_load_n(p, __ATOMIC_SEQ_CST);                        \
            while ((op == FAM_AOP_MIN ? v < o_ : v > o_) &&                   \
                   !__atomic_compare_exchange_n(p, &o_, v, 0, __ATOMIC_SEQ_CST, \
                                                __ATOMIC_SEQ_CST)) {}         \
        }                                                                     \
        memcpy(oldp, &o_, sizeof o_);                                         \
    } while (0)

#define FAM_CPU_FLT_(T, U, p, op, v, oldp)                                    \
    do {                                                                      \
        U *pu_ = (U *)(p);                                                    \
        U ou_ = __atomic_load_n(pu_, __ATOMIC_SEQ_CST), nu_;                  \
        for (;;) {                                                            \
            T o_, n_;                                                         \
            memcpy(&o_, &ou_, sizeof o_);                                     \
            n_ = op == FAM_AOP_SET ? v : op == FAM_AOP_ADD ? o_ + v           \
               : op == FAM_AOP_MIN ? (v < o_ ? v : o_) : (v > o_ ? v : o_);   \
            memcpy(&nu_, &n_, sizeof n_);                                     \
            if (__atomic_compare_exchange_n(pu_, &ou_, nu_, 0,                \
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) \
                break;                                                        \
        }                                                                     \
        memcpy(oldp, &ou_, sizeof ou_);                                       \
    } while (0)

/* *p = *p op v, atomically; the old value goes to `old` (type-sized). The
 * caller has checked that type and op go together and p is aligned. */
static inline void fam_cpu_atomic(void *p, uint32_t type, uint32_t op,
                                  const void *v, void *old)
{
    switch (type) {
    case FAM_INT32: {
        int32_t x; memcpy(&x, v, 4);
        if (op == FAM_AOP_MIN || op == FAM_AOP_MAX) FAM_CPU_INT_(int32_t, (int32_t *)p, op, x, old);
        else FAM_CPU_INT_(uint32_t, (uint32_t *)p, op, (uint32_t)x, old);
        break;
    }
    case FAM_UINT32: {
        uint32_t x; memcpy(&x, v, 4);
        FAM_CPU_INT_(uint32_t, (uint32_t *)p, op, x, old);
        break;
    }
    case FAM_INT64: {
        int64_t x; memcpy(&x, v, 8);
        if (op == FAM_AOP_MIN || op == FAM_AOP_MAX) FAM_CPU_INT_(int64_t, (int64_t *)p, op, x, old);
        else FAM_CPU_INT_(uint64_t, (uint64_t *)p, op, (uint64_t)x, old);
        break;
    }
    case FAM_UINT64: {
        uint64_t x; memcpy(&x, v, 8);
        FAM_CPU_INT_(uint64_t, (uint64_t *)p, op, x, old);
        break;
    }
    case FAM_FLOAT: {
        float x; memcpy(&x, v, 4);
        FAM_CPU_FLT_(float, uint32_t, p, op, x, old);
        break;
    }
    case FAM_DOUBLE: {
        double x; memcpy(&x, v, 8);
        FAM_CPU_FLT_(double, uint64_t, p, op, x, old);
        break;
    }
    }
}

#endif /* FAM_CPU_ATOMIC_H */
