/* SPDX-License-Identifier: Apache-2.0 */
/* famd.h — private declarations shared by the files of the memory server.
 *
 * famd is one process, one thread: an event loop (famd_main.c) reads control
 * requests from sockets and answers them (famd_rpc.c) against one memory pool
 * (famd_pool.c), whose bytes clients reach with one-sided RMA through the
 * libfabric endpoint set up in famd_fabric.c. Being single-threaded, none of
 * the state below needs a lock. */
#ifndef FAMD_H
#define FAMD_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fam/fam.h"
#include "fam_common.h" /* fam_now_us, fam_parse_size */
#include "fam_proto.h"

#define FAMD_PAGE 4096u
/* items smaller than this are placed from the top of the pool, larger ones
 * from the bottom (famd_pool.c, extent_take) */
#define FAMD_SMALL ((uint64_t)2 << 20)
#define FAMD_REC_SIZE 512u
#define FAMD_MIN_POOL (16ull << 20)
#define FAMD_SLOT_BITS 24 /* ids carry the record slot in their low bits */

/* First 4 KiB of the pool. Written once when the pool is formatted, except
 * next_id which grows with every new region or item. */
struct famd_super {
    char magic[16];     /* FAMD_SUPER_MAGIC */
    uint64_t version;   /* layout version, 1 */
    uint64_t pool_size; /* bytes of the whole pool, header included */
    uint64_t nslots;    /* metadata records */
    uint64_t meta_off;  /* first record's offset */
    uint64_t data_off;  /* first byte handed out to items (page aligned) */
    _Atomic uint64_t next_id; /* next id counter (shifted left by SLOT_BITS) */
    uint64_t instance;  /* random, drawn at each start: a client that maps
                           the pool file checks it is this famd's live pool */
};
#define FAMD_SUPER_MAGIC FAMP_POOL_MAGIC
_Static_assert(offsetof(struct famd_super, instance) == FAMP_POOL_INSTANCE_OFF,
               "libfam finds the instance number here");

enum famd_rec_kind {
    FAMD_REC_FREE = 0,
    FAMD_REC_REGION = 0x4e474552u, /* "REGN" */
    FAMD_REC_ITEM = 0x4d455449u,   /* "ITEM" */
};

/* One metadata record, FAMD_REC_SIZE bytes, in the pool itself. A record is
 * written while its state is FREE and committed by one aligned 8-byte store
 * of its kind into `state`; it is deleted by storing FREE. Later changes
 * (mode, size) are single aligned stores too, so a kill -9 at any instant
 * leaves every record either before or after a change, never half-made. */
struct famd_rec {
    _Atomic uint64_t state; /* enum famd_rec_kind; FREE = slot unused */
    uint64_t id;            /* unique in this pool; low bits = slot */
    uint64_t region_id;     /* items: the region they belong to */
    uint64_t offset;        /* items: first byte in the pool */
    _Atomic uint64_t size;  /* regions: limit; items: bytes asked for */
    uint64_t stripe;        /* regions: stripe size for interleaving */
    uint32_t uid, gid;      /* owner */
    _Atomic uint32_t mode;  /* permission bits */
    uint32_t memtype;       /* regions: fam_memory_type_t */
    uint32_t interleave;    /* regions: fam_interleave_t */
    uint32_t unnamed;       /* items: 1 if allocated without a name */
    uint32_t shard;         /* striped items: which stripe set this is */
    uint32_t nshards;       /* regions and items: memory servers striped
                               over (0 in old pools: 1) */
    uint64_t total;         /* striped items: bytes of the whole item */
    char name[FAM_NAME_MAX + 1];
    /* Added after the name, out of what was padding (zero in older pools,
     * which thus read as "home part, committed"): */
    uint64_t home_id;       /* a part of a multi-server object other than
                               its home part: the home part's id (on the
                               region's home server for region parts, on
                               server 0 for item parts); 0: home/single */
    _Atomic uint32_t pending; /* 1 while a multi-server create is not yet
                               committed: invisible to lookups and lists,
                               dropped when its connection closes or famd
                               starts (docs/PROTOCOL.md) */
    uint32_t pad0;
    uint8_t pad[FAMD_REC_SIZE - 88 - (FAM_NAME_MAX + 1) - 16];
};
_Static_assert(sizeof(struct famd_rec) == FAMD_REC_SIZE, "record size");

/* A run of free pool bytes. */
struct famd_extent {
    uint64_t off, len;
};

struct fid_mr;

/* Run-time state of one record slot (not persisted). */
struct famd_live {
    int32_t next;          /* next slot in the same name-hash bucket, or -1 */
    uint64_t used;         /* regions: bytes given to their items */
    struct fid_mr *mr_rw;  /* items: registration allowing read+write */
    struct fid_mr *mr_ro;  /* items: registration allowing read only */
    uint64_t key_rw, key_ro;
    uint64_t owner;        /* pending records: token of the connection that
                              made them (it alone may commit or free them) */
};

/* Who sent a request, as learned from the kernel (see docs/SECURITY.md). */
struct famd_cred {
    uint32_t uid, gid;
    uint32_t ngroups;
    uint32_t groups[32]; /* supplementary groups */
};

struct famd_fabric; /* famd_fabric.c */
struct famd_bulk;   /* famd_bulk.c */
struct famd_auth;   /* famd_auth.c */

struct famd {
    /* pool */
    int fd;                 /* pool file, or -1 (anonymous memory) */
    uint8_t *base;          /* the pool mapped */
    uint64_t size;          /* bytes */
    int persistent;         /* 1 if backed by --pool-file */
    char path[FAM_NAME_MAX + 1]; /* the pool file's absolute path, or "" */
    struct famd_super *sb;  /* == base */
    struct famd_rec *recs;  /* nslots records */
    uint64_t nslots;
    /* index (rebuilt at start) */
    int32_t *bucket;        /* nslots heads of name-hash chains, -1 = empty */
    struct famd_live *live; /* nslots */
    struct famd_extent *freelist; /* sorted by offset, merged */
    size_t nfree, capfree;
    uint64_t free_bytes;
    struct famd_prefault *pf; /* maps in the next items' pages, or NULL
                                 (famd_prefault.c) */
    /* fabric */
    struct famd_fabric *fab;
    struct famd_bulk *bulk; /* bulk requests over fabric messages */
    /* last error of the request being handled */
    char err[FAMP_MAX_ERRMSG];
    uint64_t spin_us;       /* --spin-us: the most any client gets */
    uint64_t spin_now;      /* busy-poll this long after activity: the
                               longest a connected client asked for */
    const char *data_dir;   /* --data-dir: where backups go, or NULL */
    int verbose;
    /* durability (famd_pool.c, famd_backup.c) */
    uint64_t conn;          /* token of the connection whose request is
                               being handled (set by famd_main.c) */
    int32_t *pend;          /* slots of pending records (so that a closing
                               connection costs no scan of every record) */
    size_t npend, cappend;
    struct famd_stage *stage; /* staged backup parts, FAMD_MAX_STAGED */
    uint64_t stage_serial;  /* makes staged file names unique */
    uint64_t backup_gen;    /* +1 each time famd changes what data_dir lists */
    struct famd_baklist *baklist; /* the last listing (famd_backup_list) */
    /* per-uid quotas (0: no limit; root is exempt, docs/SECURITY.md) */
    uint64_t quota_objects; /* regions + items one uid may hold */
    uint64_t quota_bytes;   /* item bytes one uid may hold */
    uint64_t quota_backup_bytes; /* bytes of backup files (and parts being
                                    staged) one uid may hold in data_dir */
    struct famd_usage *usage; /* one entry per uid holding something */
    size_t nusage, capusage;
    /* identity of TCP clients (famd_auth.c) */
    struct famd_auth *auth; /* --auth munge; NULL: TCP clients are nobody */
    char ident[128];        /* "famd ADDR:PORT pool INSTANCE": what a
                               credential's payload must name */
};

/* A backup part written to a temporary file by a staged FAMP_BACKUP and not
 * yet committed (renamed into place) or aborted. */
#define FAMD_MAX_STAGED 64
#define FAMD_MAX_STAGED_UID 16 /* so that one uid cannot take every entry */
struct famd_stage {
    uint64_t conn;                  /* owning connection's token; 0: unused */
    uint32_t uid;                   /* who staged it */
    char name[FAM_NAME_MAX + 1];    /* the backup's name */
    char tmp[FAM_NAME_MAX + 64];    /* the temporary file, in data_dir */
};

/* What one uid holds in this famd (rebuilt from the records at start). */
struct famd_usage {
    uint32_t uid;
    uint64_t objects;       /* region and item records */
    uint64_t bytes;         /* bytes of its items (page-rounded) */
};

/* famd_pool.c */
int famd_fail(struct famd *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int famd_pool_open(struct famd *d, const char *path, uint64_t size);
void famd_pool_close(struct famd *d);
/* famd_prefault.c: keep `ahead` free bytes of a volatile pool mapped in
 * from a thread, where the next small and large items go; note after
 * every change of the free list, and tell it of every request or
 * completion (it maps pages in only once famd has been quiet a while) */
int famd_prefault_start(struct famd *d, uint64_t ahead);
void famd_prefault_note(struct famd *d);
void famd_prefault_busy(void);
void famd_prefault_stop(struct famd *d);
int32_t famd_find(struct famd *d, uint32_t kind, uint64_t region_id,
                  const char *name);
int32_t famd_lookup(struct famd *d, uint32_t kind, uint64_t region_id,
                    const char *name, uint64_t home);
int32_t famd_slot_of(struct famd *d, uint32_t kind, uint64_t id);
int famd_region_create(struct famd *d, const char *name, uint64_t size,
                       const struct famd_cred *c, uint32_t mode,
                       uint32_t memtype, uint32_t interleave, uint64_t stripe,
                       uint32_t nshards, uint64_t home_id, int pending,
                       int32_t *slot);
int famd_region_destroy(struct famd *d, int32_t slot);
int famd_region_resize(struct famd *d, int32_t slot, uint64_t size);
/* Where a striped item's part fits in the whole (nshards 1: not striped). */
struct famd_shardinfo {
    uint64_t total;   /* bytes of the whole item */
    uint64_t stripe;  /* bytes per stripe */
    uint32_t shard, nshards;
};
int famd_item_alloc(struct famd *d, int32_t region_slot, const char *name,
                    uint64_t size, const struct famd_cred *c, uint32_t mode,
                    const struct famd_shardinfo *si, uint64_t home_id,
                    int pending, int32_t *slot);
int famd_item_free(struct famd *d, int32_t slot);
/* Multi-server creates: mark a new record pending for connection d->conn,
 * commit it, and drop what a closed connection left pending. */
int famd_commit(struct famd *d, uint64_t id);
void famd_conn_gone(struct famd *d, uint64_t conn);
/* 1 if the caller (d->conn) may see the record: committed, or its own */
int famd_visible(struct famd *d, int32_t slot);
int famd_may(const struct famd_rec *r, const struct famd_cred *c, int want);
#define FAMD_R 4
#define FAMD_W 2

/* famd_fabric.c */
int famd_fabric_open(struct famd *d, const char *provider, const char *host);
const char *famd_fabric_provider(struct famd *d);
uint64_t famd_item_base(struct famd *d, int32_t slot);
void famd_fabric_close(struct famd *d);
int famd_fabric_getname(struct famd *d, uint8_t *addr, uint32_t *len);
int famd_fabric_virt_addr(struct famd *d);
int famd_fabric_wait_fd(struct famd *d);
int famd_fabric_progress(struct famd *d);  /* returns events seen */
int famd_fabric_trywait(struct famd *d);   /* 0 if it is safe to block */
int famd_mr_get(struct famd *d, int32_t slot, int writable, uint64_t *key);
void famd_mr_drop(struct famd *d, int32_t slot);
struct fid_ep *famd_fabric_ep(struct famd *d);
struct fid_av *famd_fabric_av(struct famd *d);
/* famd's writes to other famds (copies, restores) use their own endpoint
 * and address vector (famd_fabric.c says why) */
struct fid_ep *famd_fabric_copy_ep(struct famd *d);
struct fid_av *famd_fabric_copy_av(struct famd *d);
size_t famd_fabric_max_msg(struct famd *d);
uint64_t famd_fabric_write_flags(struct famd *d); /* for fi_writemsg */
/* 0 if addr is a well-formed fabric address of famd's provider, else
 * FAM_EINVAL with d->err naming `whose` address it is ("the client's").
 * uid: the client's, to check an shm endpoint is its own (0: skip). */
int famd_fabric_addr_check(struct famd *d, const uint8_t *addr, uint32_t len,
                           uint32_t uid, const char *whose);

/* The header of a backup file (famd_backup.c), followed by `size` bytes. */
struct famd_bak {
    char magic[8];       /* "KFAMBAK1" */
    uint32_t version;    /* 1 */
    uint32_t hdr_crc;    /* CRC-32 of this header with hdr_crc = 0 */
    uint64_t size;       /* data bytes in this file (one part of the item) */
    uint64_t total;      /* bytes of the whole item */
    uint64_t stripe;     /* striped items: bytes per stripe */
    uint64_t time;       /* when it was made (seconds since 1970) */
    uint32_t part, nparts; /* which part of a striped item, of how many */
    uint32_t uid, gid;   /* who made the backup */
    uint32_t mode;       /* the item's permission bits, applied to the backup */
    uint32_t data_crc;   /* CRC-32 (zlib) of the data */
    char item[FAM_NAME_MAX + 1]; /* the item's name */
};

/* famd_backup.c */
int famd_backup_name_ok(struct famd *d, const char *name);
int famd_backup_write(struct famd *d, int32_t slot, const char *name,
                      const struct famd_cred *c, int staged);
int famd_backup_commit(struct famd *d, const char *name,
                       const struct famd_cred *c, int abort);
void famd_backup_conn_gone(struct famd *d, uint64_t conn);
void famd_backup_clean(struct famd *d); /* leftover temporaries, at start/stop */
int famd_backup_stat(struct famd *d, const char *name, const struct famd_cred *c,
                     struct famd_bak *h);
int famd_backup_open(struct famd *d, const char *name, const struct famd_cred *c,
                     struct famd_bak *h, int *fd);
int famd_backup_delete(struct famd *d, const char *name, const struct famd_cred *c);
int famd_backup_list(struct famd *d, uint64_t index, const struct famd_cred *c,
                     struct famd_bak *h, char *name_out, size_t name_len);

/* famd_auth.c: MUNGE credentials of TCP clients (--auth munge) */
int famd_auth_open(struct famd *d, const char *socket, int max_age,
                   size_t cache);
void famd_auth_close(struct famd *d);
const char *famd_auth_socket(const struct famd *d);
int famd_auth_nonce(struct famd *d, uint64_t nonce[2]);
/* Check credential cred (len bytes) sent on a connection with this nonce;
 * 0 with the client's identity in *out, or FAM_EPERM with the reason in
 * d->err (expired, replayed, invalid, munged not running). */
int famd_auth_check(struct famd *d, const char *cred, size_t len,
                    const uint64_t nonce[2], const char *ident,
                    struct famd_cred *out);

/* famd_bulk.c */
int famd_bulk_open(struct famd *d);
void famd_bulk_close(struct famd *d); /* after famd_fabric_close */
int famd_bulk_peer_add(struct famd *d, const uint8_t *addr, uint32_t len,
                       const struct famd_cred *c, uint64_t *token);
/* The connection that said HELLO with this token closed; woke: it sent a
 * WAKE (so it may have fabric traffic with us). */
void famd_bulk_peer_drop(struct famd *d, uint64_t token, int woke);
void famd_bulk_done(struct famd *d, void *ctx, size_t len, int err);
int famd_bulk_poll(struct famd *d); /* 1 while bulk work is pending */

#endif /* FAMD_H */
