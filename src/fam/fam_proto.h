/* fam_proto.h — the control protocol between libfam and famd.
 *
 * Private to the two of them (libfam includes it, famd includes it); the
 * human-readable description is docs/PROTOCOL.md. Every message is a fixed
 * 24-byte header followed by `len` body bytes. Control requests carry one
 * fixed-size famp_req body; replies carry one famp_info body on success or
 * an error message (UTF-8, not NUL-terminated) when status < 0. All integers
 * are little-endian; every field is naturally aligned so the structs have no
 * padding that differs between compilers. */
#ifndef FAM_PROTO_H
#define FAM_PROTO_H

#include <stdint.h>

#include "fam/fam.h"

#define FAMP_MAGIC 0x314d464bu /* "KFM1" in little-endian bytes */
#define FAMP_VERSION 1
#define FAMP_MAX_BODY (64u << 20) /* larger bodies close the connection */
#define FAMP_MAX_ERRMSG 1024
#define FAMP_ADDR_MAX 256 /* longest libfabric endpoint name we carry */

struct famp_hdr {
    uint32_t magic;   /* FAMP_MAGIC */
    uint16_t version; /* FAMP_VERSION */
    uint16_t op;      /* enum famp_op; replies echo the request's */
    uint32_t seq;     /* chosen by the client, echoed in the reply */
    int32_t status;   /* requests: 0; replies: 0 or a FAM_E* code */
    uint64_t len;     /* body bytes that follow */
};

enum famp_op {
    FAMP_HELLO = 1,     /* exchange fabric addresses and identity */
    FAMP_REGION_CREATE, /* name, size, mode, memtype, interleave, stripe */
    FAMP_REGION_LOOKUP, /* name */
    FAMP_REGION_DESTROY,/* id */
    FAMP_REGION_RESIZE, /* id, size */
    FAMP_REGION_CHMOD,  /* id, mode */
    FAMP_REGION_STAT,   /* id */
    FAMP_ITEM_ALLOC,    /* region_id, name ("" = unnamed), size, mode */
    FAMP_ITEM_LOOKUP,   /* name (item), name2 (region) */
    FAMP_ITEM_FREE,     /* id */
    FAMP_ITEM_CHMOD,    /* id, mode */
    FAMP_ITEM_STAT,     /* id */
    FAMP_CAS128,        /* id, off, arg[0..1] expected, arg[2..3] desired */
    FAMP_WAKE,          /* no body, no reply: "I am about to do RMA" */
    FAMP_OP_END
};

/* The body of every control request. Fields an op does not use are zero. */
struct famp_req {
    uint64_t id;        /* region or item id the request is about */
    uint64_t region_id; /* region of a new item */
    uint64_t size;      /* bytes */
    uint64_t off;       /* byte offset inside an item */
    uint64_t stripe;    /* stripe size of a new region (0: default) */
    uint64_t arg[4];    /* operands (128-bit compare-and-swap) */
    uint32_t mode;      /* permission bits */
    uint32_t memtype;   /* fam_memory_type_t */
    uint32_t interleave;/* fam_interleave_t */
    uint32_t addrlen;   /* HELLO: bytes of addr used */
    char name[FAM_NAME_MAX + 1];  /* NUL-terminated */
    char name2[FAM_NAME_MAX + 1]; /* NUL-terminated */
    uint8_t addr[FAMP_ADDR_MAX];  /* HELLO: the client's fabric address */
    char provider[32];            /* HELLO: "shm" or "tcp" */
};

#define FAMP_F_WRITABLE 1u   /* items: key allows writes and atomics */
#define FAMP_F_PERSISTENT 2u /* HELLO: the pool survives restarts */
#define FAMP_F_VIRT_ADDR 4u  /* HELLO: RMA addresses are virtual (add base) */

/* The body of every successful control reply. */
struct famp_info {
    uint64_t id;        /* region or item id */
    uint64_t region_id; /* items: their region */
    uint64_t size;      /* bytes */
    uint64_t used;      /* regions: bytes given to items */
    uint64_t stripe;    /* regions: stripe size */
    uint64_t key;       /* items: remote key for RMA (0 = no access) */
    uint64_t base;      /* items: address to add offsets to for RMA */
    uint64_t arg[2];    /* results (old value of a 128-bit swap) */
    uint64_t pool_size; /* HELLO: pool bytes */
    uint32_t uid, gid;  /* owner; HELLO: who famd thinks the client is */
    uint32_t mode;      /* permission bits */
    uint32_t memtype;   /* fam_memory_type_t as stored */
    uint32_t interleave;
    uint32_t flags;     /* FAMP_F_* */
    uint32_t addrlen;   /* HELLO: bytes of addr used */
    uint32_t spin_us;   /* HELLO: how long famd stays awake after a WAKE */
    char name[FAM_NAME_MAX + 1];
    uint8_t addr[FAMP_ADDR_MAX]; /* HELLO: famd's fabric address */
};

#endif /* FAM_PROTO_H */
