/* SPDX-License-Identifier: Apache-2.0 */
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

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fam/fam.h"

#define FAMP_MAGIC 0x314d464bu /* "KFM1" in little-endian bytes */
#define FAMP_VERSION 2
#define FAMP_MAX_BODY (64u << 20) /* larger bodies close the connection */
#define FAMP_MAX_ERRMSG 1024
#define FAMP_ADDR_MAX 256 /* longest libfabric endpoint name we carry */
#define FAMP_MAX_SHARDS 256 /* most memory servers one item is striped over */
/* Same-host fast path: a pool file starts with this magic, and holds the
 * instance number famd drew at start (HELLO's pool_off) at this offset. */
#define FAMP_POOL_MAGIC "KODIAK-FAMPOOL1"
#define FAMP_POOL_INSTANCE_OFF 64

/* The local control socket: famd listening on TCP port P also listens on
 * the Unix socket "@kodiak-famd/port:P" in Linux's abstract namespace (no
 * file; the name goes when famd's socket closes), where the kernel tells it
 * the client's uid (SO_PEERCRED). Keyed by the port alone, not the address:
 * at most one famd per port on a host can hold the name, and a famd that
 * cannot take it refuses to start, so a client that reaches port P over
 * TCP on this host and the Unix name of port P reach the same famd
 * (docs/SECURITY.md). Fills *a; returns the address length for bind/connect. */
#define FAMP_UNIX_NAME "kodiak-famd/port:%d"
static inline socklen_t famp_unix_addr(struct sockaddr_un *a, int port)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* sun_path[0] stays '\0': the abstract namespace */
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, FAMP_UNIX_NAME,
                     port);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Is IPv4 address a (network byte order) one of this host's own? Only a
 * local address can be bound, so try binding a UDP socket to it. */
static inline int famp_address_is_local(uint32_t a)
{
    if ((ntohl(a) >> 24) == 127) return 1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = a};
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

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
    FAMP_REGION_CREATE, /* name, size, mode, memtype, interleave, stripe,
                           arg[2] nshards */
    FAMP_REGION_LOOKUP, /* name */
    FAMP_REGION_DESTROY,/* id */
    FAMP_REGION_RESIZE, /* id, size */
    FAMP_REGION_CHMOD,  /* id, mode */
    FAMP_REGION_STAT,   /* id */
    FAMP_ITEM_ALLOC,    /* region_id, name ("" = unnamed), size, mode;
                           striped: arg[0] total, arg[1] shard,
                           arg[2] nshards, stripe */
    FAMP_ITEM_LOOKUP,   /* name (item), name2 (region) */
    FAMP_ITEM_FREE,     /* id */
    FAMP_ITEM_CHMOD,    /* id, mode */
    FAMP_ITEM_STAT,     /* id */
    FAMP_CAS128,        /* id, off, arg[0..1] expected, arg[2..3] desired */
    FAMP_WAKE,          /* no body, no reply: "I am about to do RMA" */
    FAMP_BACKUP,        /* id (item part), name2 (backup name) */
    FAMP_BACKUP_STAT,   /* name2 */
    FAMP_BACKUP_DELETE, /* name2 */
    FAMP_BACKUP_LIST,   /* off: index of the backup wanted (by name) */
    FAMP_ITEM_LIST,     /* id (region), off: first metadata slot to look at;
                           reply: the next named item there, arg[0] = its
                           slot (ask again from arg[0] + 1) */
    /* multi-server creates and staged backups (docs/PROTOCOL.md) */
    FAMP_COMMIT,        /* id: a pending region or item part of this
                           connection becomes visible */
    FAMP_BACKUP_COMMIT, /* name2: the part staged by this connection
                           replaces backup name2 */
    FAMP_BACKUP_ABORT,  /* name2: the staged part is removed */
    FAMP_PART_LIST,     /* off: first metadata slot; reply: the next
                           non-home part (home_id != 0) the caller owns
                           (root: any), arg[0] = its slot, arg[1] = its
                           home id, flags FAMP_F_REGION for a region part */
    FAMP_WAKE_SYNC,     /* body ignored; reply: an empty famp_info, sent
                           once famd is awake and polling its fabric (the
                           first operation after an idle gap waits for it) */
    FAMP_AUTH,          /* body: a MUNGE credential (1..FAMP_MAX_CRED
                           bytes, not a famp_req) whose payload is
                           famp_auth_payload(); reply: famp_info with the
                           uid and gid famd now takes the client for */
    FAMP_REST,          /* no body, no reply: "no RMA from me for a while":
                           famd need not stay awake for this client's last
                           WAKE (fam_rest) */
    FAMP_OP_END
};

/* The body of every control request. Fields an op does not use are zero. */
struct famp_req {
    uint64_t id;        /* region or item id the request is about */
    uint64_t region_id; /* region of a new item */
    uint64_t size;      /* bytes */
    uint64_t off;       /* byte offset inside an item */
    uint64_t stripe;    /* stripe size of a new region (0: default) */
    uint64_t arg[4];    /* operands (128-bit compare-and-swap); HELLO:
                           arg[0] = the longest famd should poll after this
                           client's activity, in us (FAM_SPIN_US; 0: famd's
                           --spin-us, which is also the most it grants) */
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
#define FAMP_F_REGION 8u     /* PART_LIST: the part is a region's */
#define FAMP_F_AUTH 16u      /* HELLO reply: famd --auth munge wants a
                                credential first (nothing else in the reply
                                but arg[0..1] = this connection's nonce,
                                uid = famd's uid, name = famd's identity) */

/* MUNGE identity over TCP (docs/SECURITY.md): the credential's payload
 * names the server and the connection's nonce, so that a credential made
 * for one famd or one connection is refused by any other. */
#define FAMP_MAX_CRED 2048 /* longest AUTH body famd reads */
/* munged's socket when none is named (libmunge's default) */
#define FAMP_MUNGE_SOCKET "/run/munge/munge.socket.2"
static inline int famp_auth_payload(char *buf, size_t n, const char *ident,
                                    const uint64_t nonce[2])
{
    return snprintf(buf, n, "kodiak-famd-auth/1 %s nonce=%016llx%016llx",
                    ident, (unsigned long long)nonce[0],
                    (unsigned long long)nonce[1]);
}

/* REGION_CREATE and ITEM_ALLOC, arg[3]: create the part pending (invisible,
 * rolled back when this connection closes uncommitted; COMMIT makes it
 * visible). `id` = the home part's id for the other parts of a
 * multi-server region or item (0: this is the home part), and for
 * REGION_LOOKUP and ITEM_LOOKUP the home part whose part is wanted (0:
 * any). BACKUP, arg[0]: write the part to a temporary file only (staged),
 * to be put in place by BACKUP_COMMIT or removed by BACKUP_ABORT. */
#define FAMP_C_PENDING 1u
#define FAMP_BK_STAGE 1u

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
    uint64_t token;     /* HELLO: this connection's secret for bulk messages */
    uint64_t total;     /* items: bytes of the whole (striped) item */
    uint32_t shard;     /* items: which part of a striped item this is */
    uint32_t nshards;   /* regions, items: servers striped over */
    uint64_t pool_off;  /* items: first byte in famd's pool (fast path);
                           HELLO: the pool's instance number */
    uint32_t uid, gid;  /* owner; HELLO: who famd thinks the client is */
    uint32_t mode;      /* permission bits */
    uint32_t memtype;   /* fam_memory_type_t as stored */
    uint32_t interleave;
    uint32_t flags;     /* FAMP_F_* */
    uint32_t addrlen;   /* HELLO: bytes of addr used */
    uint32_t spin_us;   /* HELLO: how long famd stays awake after a WAKE
                           of this client (what it asked, or --spin-us) */
    char name[FAM_NAME_MAX + 1]; /* HELLO: the pool file ("" if none) */
    uint8_t addr[FAMP_ADDR_MAX]; /* HELLO: famd's fabric address */
};

/* ---- bulk requests: libfabric tagged messages ---------------------------
 *
 * Bulk work (indexed gather/scatter, bulk atomics, copy) travels on the
 * fabric itself, so its payload moves at fabric speed. A client sends a
 * request with tag FAMP_TAG_REQ to famd's endpoint; famd answers on the
 * endpoint whose address the client gave in HELLO: first, for a request
 * that returns data (gather, fetching atomics), one message with the data
 * tagged `seq`, then always one famp_bstatus tagged FAMP_TAG_STATUS | seq.
 * A request names the item by id and carries the RMA key the client was
 * given for it: the key is the capability (a read-only key allows gather
 * only), exactly as for one-sided RMA. `token` says which connection the
 * request belongs to and thus where the answer goes. */
#define FAMP_TAG_REQ (1ull << 63)
#define FAMP_TAG_STATUS (1ull << 62)
#define FAMP_SEQ_MASK (FAMP_TAG_STATUS - 1)
#define FAMP_BULK_MAX (4u << 20) /* largest request or reply message */
#define FAMP_BULK_MAGIC 0x424d464bu /* "KFMB" */

enum famp_bulk_op {
    FAMP_B_GATHER = 1, /* n byte offsets -> n elements of esize bytes */
    FAMP_B_SCATTER,    /* n byte offsets, n elements -> status */
    FAMP_B_ATOMIC,     /* n byte offsets, n operands -> status (+ old values) */
    FAMP_B_COPY,       /* src range -> a range of an item on dst famd */
    FAMP_B_RESTORE,    /* backup `name` -> an item part here or on dst famd */
    FAMP_B_END
};

/* Header of a bulk request; the payload follows it in the same message:
 * GATHER: n u64 byte offsets; SCATTER and ATOMIC: n u64 byte offsets, then
 * n elements of esize bytes; COPY and RESTORE: nothing (RESTORE uses the
 * dst_* fields as COPY does, and `len` must be the backup's size). */
struct famp_bulk {
    uint32_t magic;    /* FAMP_BULK_MAGIC */
    uint16_t version;  /* FAMP_VERSION */
    uint16_t op;       /* enum famp_bulk_op */
    uint64_t token;    /* from the HELLO reply on the control connection */
    uint64_t seq;      /* tag of the replies, below FAMP_TAG_STATUS */
    uint64_t id;       /* the item (copy: the source item) */
    uint64_t key;      /* the client's key for it */
    uint64_t n;        /* elements */
    uint64_t esize;    /* bytes per element */
    uint32_t aop;      /* ATOMIC: fam_aop_t */
    uint32_t dtype;    /* ATOMIC: fam_dtype_t */
    uint32_t fetch;    /* ATOMIC: 1 to get the old values back */
    uint32_t dst_addrlen; /* COPY: bytes of dst_addr used (0: same famd) */
    uint64_t src_off;  /* COPY: first source byte */
    uint64_t len;      /* COPY: bytes */
    uint64_t dst_id;   /* COPY: destination item (same famd only) */
    uint64_t dst_key;  /* COPY: its key (RMA key on the other famd) */
    uint64_t dst_addr_rma; /* COPY: RMA address of the first dest byte */
    uint64_t dst_off;  /* COPY: first destination byte */
    uint8_t dst_addr[FAMP_ADDR_MAX]; /* COPY: the destination famd's address */
    char name[FAM_NAME_MAX + 1];    /* RESTORE: the backup (NUL-terminated) */
};

/* The status that ends every bulk request. */
struct famp_bstatus {
    uint64_t seq;     /* the request's */
    int32_t status;   /* 0 or a FAM_E* code */
    uint32_t msglen;  /* bytes of msg used */
    char msg[FAMP_MAX_ERRMSG];
};

#endif /* FAM_PROTO_H */
