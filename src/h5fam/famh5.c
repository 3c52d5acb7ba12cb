/* SPDX-License-Identifier: Apache-2.0 */
/* famh5.c — copy HDF5 files into and out of FAM, list and remove them.
 *
 *   famh5 [-s SERVERS] [-p PROVIDER] put LOCAL REGION/NAME
 *   famh5 [-s SERVERS] [-p PROVIDER] get REGION/NAME LOCAL
 *   famh5 [-s SERVERS] [-p PROVIDER] ls REGION
 *   famh5 [-s SERVERS] [-p PROVIDER] rm [-f] REGION/NAME
 *   famh5 [-s SERVERS] [-p PROVIDER] mkregion [-i] [-m MODE] REGION SIZE
 *
 * put and get move the bytes through the fam driver itself (H5FD calls),
 * so a copy in is claimed by its writer until it is whole: a reader never
 * sees half of it, and a put that fails leaves it marked unfinished. The
 * copy is byte for byte: h5diff and h5dump see the same file. ls reads
 * each file's header for its size and state; rm claims a file (so no one
 * opens it meanwhile), frees its extents, then its header. mkregion makes
 * a region for files (the driver never creates regions: their size and
 * permissions are the owner's choice): -i interleaves it over all memory
 * servers, MODE is octal (default 0700), SIZE takes K, M, G. Servers and
 * provider default to $FAM_SERVERS and $FAM_PROVIDER. Exit status 0 on
 * success, 1 on failure (a message on stderr), 2 on bad usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fam/fam.h"
#include "kodiak/h5fam.h"
#include "h5fam_internal.h"
#include "fam_common.h" /* fam_parse_size */

#define COPY_CHUNK (64u << 20) /* bytes moved per driver call */

static const char *opt_servers, *opt_provider;

static void usage(void)
{
    fprintf(stderr,
            "usage: famh5 [-s SERVERS] [-p PROVIDER] put LOCAL REGION/NAME\n"
            "       famh5 [-s SERVERS] [-p PROVIDER] get REGION/NAME LOCAL\n"
            "       famh5 [-s SERVERS] [-p PROVIDER] ls REGION\n"
            "       famh5 [-s SERVERS] [-p PROVIDER] rm [-f] REGION/NAME\n"
            "       famh5 [-s SERVERS] [-p PROVIDER] mkregion [-i] [-m MODE] REGION SIZE\n"
            "SERVERS and PROVIDER default to $FAM_SERVERS and $FAM_PROVIDER.\n");
}

/* The innermost message on HDF5's error stack. */
static herr_t first_cb(unsigned n, const H5E_error2_t *e, void *out)
{
    if (n == 0) snprintf(out, 1024, "%s", e->desc);
    return 0;
}
static const char *h5_msg(void)
{
    static char msg[1024];
    msg[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_cb, msg);
    return msg[0] ? msg : "unknown HDF5 error";
}

static hid_t make_fapl(void)
{
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    if (p < 0 || H5Pset_fapl_fam(p, opt_servers, opt_provider) < 0) {
        fprintf(stderr, "famh5: cannot set up the fam driver: %s\n", h5_msg());
        return -1;
    }
    return p;
}

static int cmd_put(const char *local, const char *famname)
{
    int fd = open(local, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "famh5: cannot open '%s': %s\n", local, strerror(errno));
        return 1;
    }
    struct stat st;
    fstat(fd, &st);
    hid_t p = make_fapl();
    if (p < 0) { close(fd); return 1; }
    H5FD_t *f = H5FDopen(famname, H5F_ACC_RDWR | H5F_ACC_CREAT | H5F_ACC_TRUNC,
                         p, HADDR_UNDEF);
    if (!f) {
        fprintf(stderr, "famh5: %s\n", h5_msg());
        close(fd);
        return 1;
    }
    H5FDset_eoa(f, H5FD_MEM_DEFAULT, (haddr_t)st.st_size);
    char *buf = malloc(COPY_CHUNK);
    int rc = buf ? 0 : 1;
    uint64_t off = 0;
    while (!rc) {
        ssize_t n = read(fd, buf, COPY_CHUNK);
        if (n < 0) {
            fprintf(stderr, "famh5: reading '%s': %s\n", local, strerror(errno));
            rc = 1;
        } else if (n == 0) {
            break;
        } else if (H5FDwrite(f, H5FD_MEM_DRAW, H5P_DEFAULT, off, (size_t)n, buf) < 0) {
            fprintf(stderr, "famh5: %s\n", h5_msg());
            rc = 1;
        } else {
            off += (uint64_t)n;
        }
    }
    if (!rc && off != (uint64_t)st.st_size) {
        fprintf(stderr, "famh5: '%s' changed size while being copied\n", local);
        rc = 1;
    }
    /* free what an earlier, longer file left past the end */
    if (!rc && H5FDtruncate(f, H5P_DEFAULT, 1) < 0) {
        fprintf(stderr, "famh5: %s\n", h5_msg());
        rc = 1;
    }
    /* a failed copy is not closed cleanly: the file stays marked unfinished */
    if (!rc && H5FDclose(f) < 0) {
        fprintf(stderr, "famh5: %s\n", h5_msg());
        rc = 1;
    }
    free(buf);
    close(fd);
    H5Pclose(p);
    return rc;
}

static int cmd_get(const char *famname, const char *local)
{
    hid_t p = make_fapl();
    if (p < 0) return 1;
    H5FD_t *f = H5FDopen(famname, H5F_ACC_RDONLY, p, HADDR_UNDEF);
    if (!f) {
        fprintf(stderr, "famh5: %s\n", h5_msg());
        return 1;
    }
    haddr_t eof = H5FDget_eof(f, H5FD_MEM_DEFAULT);
    H5FDset_eoa(f, H5FD_MEM_DEFAULT, eof);
    /* written beside its final name, renamed when whole */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.famh5-%d", local, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "famh5: cannot create '%s': %s\n", tmp, strerror(errno));
        H5FDclose(f);
        return 1;
    }
    char *buf = malloc(COPY_CHUNK);
    int rc = buf ? 0 : 1;
    for (uint64_t off = 0; !rc && off < eof;) {
        size_t n = eof - off < COPY_CHUNK ? (size_t)(eof - off) : COPY_CHUNK;
        if (H5FDread(f, H5FD_MEM_DRAW, H5P_DEFAULT, off, n, buf) < 0) {
            fprintf(stderr, "famh5: %s\n", h5_msg());
            rc = 1;
        } else if (write(fd, buf, n) != (ssize_t)n) {
            fprintf(stderr, "famh5: writing '%s': %s\n", tmp, strerror(errno));
            rc = 1;
        }
        off += n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) rc = 1;
    if (!rc && rename(tmp, local) < 0) {
        fprintf(stderr, "famh5: cannot rename '%s' to '%s': %s\n", tmp, local,
                strerror(errno));
        rc = 1;
    }
    if (rc) unlink(tmp);
    H5FDclose(f);
    free(buf);
    H5Pclose(p);
    return rc;
}

static fam_t *connect_fam(void)
{
    h5fam_fapl_t fa;
    memset(&fa, 0, sizeof fa);
    if (opt_servers) snprintf(fa.servers, sizeof fa.servers, "%s", opt_servers);
    if (opt_provider) snprintf(fa.provider, sizeof fa.provider, "%s", opt_provider);
    int rc = 0;
    fam_t *f = h5fam_connect(&fa, &rc);
    if (!f) fprintf(stderr, "famh5: cannot reach the memory servers: %s\n",
                    fam_last_error());
    return f;
}

static int cmd_ls(const char *region)
{
    fam_t *f = connect_fam();
    if (!f) return 1;
    fam_region_t *r;
    if (fam_lookup_region(f, region, &r) < 0) {
        fprintf(stderr, "famh5: region '%s': %s\n", region, fam_last_error());
        return 1;
    }
    char **names;
    size_t n;
    if (fam_list_items(f, r, &names, &n) < 0) {
        fprintf(stderr, "famh5: cannot list region '%s': %s\n", region,
                fam_last_error());
        fam_release_region(r);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *hash = strrchr(names[i], '#');
        if (hash && hash[1] && strspn(hash + 1, "0123456789") == strlen(hash + 1))
            continue; /* an extent */
        fam_item_t *d;
        if (fam_lookup(f, names[i], region, &d) < 0) continue; /* not ours to see */
        uint8_t buf[H5FAM_HDR_BYTES];
        h5fam_hdr_t h;
        char why[256];
        if (fam_item_size(d) >= H5FAM_HDR_BYTES &&
            fam_get_blocking(f, buf, d, 0, H5FAM_HDR_BYTES) == 0 &&
            h5fam_hdr_decode(buf, &h, why, sizeof why) == 0)
            printf("%14" PRIu64 "  %s/%s%s\n", h.eof, region, names[i],
                   h.writer ? "  (open for writing, or unfinished)" : "");
        fam_release(d);
    }
    fam_free_names(names, n);
    fam_release_region(r);
    return 0;
}

static int cmd_rm(const char *famname, int force)
{
    hid_t p = make_fapl();
    if (p < 0) return 1;
    int rc = 0;
    if (h5fam_remove(p, famname, force) < 0) {
        fprintf(stderr, "famh5: %s\n", h5_msg());
        rc = 1;
    }
    H5Pclose(p);
    return rc;
}

static int cmd_mkregion(int argc, char **argv)
{
    int interleave = 0;
    mode_t mode = 0700;
    int i = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-i")) interleave = 1;
        else if (!strcmp(argv[i], "-m") && i + 1 < argc)
            mode = (mode_t)strtoul(argv[++i], NULL, 8);
        else { usage(); return 2; }
    }
    uint64_t size;
    if (argc - i != 2 || fam_parse_size(argv[i + 1], &size) < 0 || size == 0) {
        usage();
        return 2;
    }
    fam_t *f = connect_fam();
    if (!f) return 1;
    fam_region_attr_t at = {0};
    at.interleave = interleave ? FAM_INTERLEAVE_ENABLE : FAM_INTERLEAVE_DISABLE;
    fam_region_t *r;
    if (fam_create_region(f, argv[i], size, mode, &at, &r) < 0) {
        fprintf(stderr, "famh5: cannot create region '%s': %s\n", argv[i],
                fam_last_error());
        return 1;
    }
    fam_release_region(r);
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) opt_servers = argv[++i];
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) opt_provider = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (i >= argc) { usage(); return 2; }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* messages are printed here */
    if (h5fam_init() < 0) { /* also so H5close closes our connections */
        fprintf(stderr, "famh5: cannot register the fam driver\n");
        return 1;
    }
    const char *cmd = argv[i++];
    int left = argc - i, rc;
    if (!strcmp(cmd, "put") && left == 2) rc = cmd_put(argv[i], argv[i + 1]);
    else if (!strcmp(cmd, "get") && left == 2) rc = cmd_get(argv[i], argv[i + 1]);
    else if (!strcmp(cmd, "ls") && left == 1) rc = cmd_ls(argv[i]);
    else if (!strcmp(cmd, "rm") && left == 1) rc = cmd_rm(argv[i], 0);
    else if (!strcmp(cmd, "rm") && left == 2 && !strcmp(argv[i], "-f"))
        rc = cmd_rm(argv[i + 1], 1);
    else if (!strcmp(cmd, "mkregion")) rc = cmd_mkregion(left, argv + i);
    else { usage(); return 2; }
    H5close(); /* closes the driver's connections */
    return rc;
}
