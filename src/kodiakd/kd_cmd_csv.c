/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_csv.c — read_csv: CSV files on kodiakd's filesystem parsed by
 * every rank in parallel into pdarrays (text columns: int64 codes plus
 * their sorted categories). The parsing itself is kd_csv.c's; this file is
 * the MPI glue: kd_csv_read() (kd.h) reads the files into unregistered
 * arrays, for the read_csv command here and for the dataset store's ingest,
 * which writes them to FAM as batches.
 *
 * How the work is split, file by file (several files are read in order, as
 * one table):
 *   1. every rank opens the file, checks that it is a regular file it can
 *      read, and parses the header itself (the same on every rank);
 *   2. the bytes after the header are cut into one range per rank; each
 *      rank counts the quote characters of its range, and an MPI_Exscan of
 *      the counts tells it whether its range starts inside quotes; its rows
 *      are those that start in its range (kd_csv_row_start), so a row that
 *      straddles a range edge belongs to the rank where it starts;
 *   3. pass 1 tokenizes the rank's rows, checks the field count and the
 *      forced dtypes, and records what each column's fields can be read as;
 *      an MPI_Allreduce of those bits gives every column its dtype as
 *      pandas would infer it, and the first bad row in file order (file,
 *      then rank) is the error reported, with its physical line number
 *      (an MPI_Exscan of the line counts of the ranges before);
 *   4. pass 2 tokenizes again and converts each field into a staging
 *      buffer; text is interned per rank, the distinct strings of all ranks
 *      are gathered and sorted (byte order, which is pandas' order for
 *      UTF-8 text), and local codes become global ones;
 *   5. one MPI_Alltoallv per column and file moves the rows into the block
 *      layout of the result pdarrays, which are registered only when every
 *      step succeeded on every rank: a failed read leaves nothing behind.
 *
 * A quote character inside an unquoted field (legal for pandas, which
 * reads it as an ordinary character) breaks the quote parity of step 2;
 * such a file is read correctly by one rank, and refused with a clear error
 * when its rows are split between ranks. */
#define _GNU_SOURCE
#include "kd.h"
#include "kd_csv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CSV_MAX_FILES 1024
/* bytes a rank reads at a time (kd_csv_chunks: more only for longer rows) */
#define CSV_CHUNK ((size_t)16 << 20)

/* KODIAK_CSV_TIMES=1 in kodiakd's environment: each rank prints the time of
 * each step of every read to its log (for bench/csv_bench.py's analysis). */
static void phase(kd_cmd *c, const char *what, double last[2])
{
    static int on = -1;
    if (on < 0)
        on = getenv("KODIAK_CSV_TIMES") != NULL;
    struct timespec ts, cpu;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    double u = (double)cpu.tv_sec + (double)cpu.tv_nsec * 1e-9;
    if (on && last[0] > 0)
        fprintf(stderr, "read_csv rank %d: %-12s %.3f s (cpu %.3f s)\n", c->rank, what,
                t - last[0], u - last[1]);
    last[0] = t;
    last[1] = u;
}
#define CSV_PATH_MAX 4096

/* dtypes of result columns (CT_TEXT: int64 codes into sorted categories;
 * CT_DATE: int64 seconds since the epoch; CT_NONE: not decided yet) */
typedef enum { CT_NONE = 0, CT_INT64, CT_FLOAT64, CT_BOOL, CT_TEXT, CT_DATE } csv_type;

/* One file being read. */
typedef struct {
    const char *path;      /* as the client named it */
    int fd;                /* open on every rank, -1 once closed */
    int64_t size;          /* bytes */
    int64_t data0;         /* first byte after the header row */
    int64_t data_line;     /* physical line of data0 */
    int64_t lo, hi;        /* this rank's range of [data0, size) */
    int64_t start, stop;   /* bytes of the rows this rank reads */
    int64_t line0;         /* physical line of start */
    int64_t lines;         /* row ends in [start, stop) */
    int64_t ends;          /* one pass: '\n' and '\r' bytes in [lo, hi), so
                              that this rank's rows are at most ends + 1 */
    int64_t nrows;         /* good rows this rank keeps */
    int64_t row0;          /* global index of the first of them */
    bool stray;            /* a quote inside an unquoted field was seen */
} csv_file;

/* One column of the result. */
typedef struct {
    int src;               /* index of the column in the file's header */
    const char *name;      /* the header's name (owned by the read) */
    csv_type forced;       /* from dtypes / parse_dates, or CT_NONE */
    csv_type type;         /* the final dtype */
    int kinds;             /* OR of kd_csv_classify() bits of good rows */
    void *stage;           /* this rank's values, in file order */
    size_t stage_cap;      /* one pass: rows allocated at stage (malloc'd,
                              grown by pass 1); 0: stage is kd_alloc_bytes' */
    kd_array *out;         /* the result (block layout) */
    /* text: the rank's distinct strings, interned */
    char *arena;           /* their bytes */
    size_t arena_len, arena_cap;
    struct csv_slot_ *slot; /* hash table of the distinct strings */
    size_t nslots;         /* power of two */
    uint64_t *soff;        /* per distinct string: offset in arena */
    uint32_t *slen;        /* per distinct string: length */
    size_t ndist, cap_dist; /* distinct strings; allocated entries */
    int64_t *gmap;         /* local code -> global code */
    int64_t ncat;          /* global categories */
} csv_col;

/* The whole read. */
typedef struct {
    kd_cmd *c;
    int nfiles;
    csv_file *files;
    int ncols;             /* columns of the header */
    char **names;          /* the header's names (file 0's) */
    int nuse;              /* columns kept */
    csv_col *cols;
    int *use;              /* header column -> index in cols, or -1 */
    bool skip;             /* on_bad_lines="skip" */
    bool onepass;          /* every column's dtype is given: pass 1 converts
                              the values too, and there is no pass 2 */
    int64_t skipped;       /* bad rows skipped by this rank */
    int64_t local_rows;    /* good rows of this rank, all files */
    int64_t total_rows;    /* good rows of all ranks and files */
    int64_t skipped_all;   /* bad rows skipped by all ranks */
    /* the first error of this rank (pass 1), reported with its line later */
    int err_file;          /* -1: none */
    int64_t err_line;      /* local line (add the file's line0) */
    char err_type[32];
    char err_msg[800];
} csv_read;

static void csv_error(csv_read *rd, int f, int64_t line, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Record this rank's first error (in pass 1 order: file, then row). */
static void csv_error(csv_read *rd, int f, int64_t line, const char *type, const char *fmt, ...)
{
    if (rd->err_file >= 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->err_msg, sizeof rd->err_msg, fmt, ap);
    va_end(ap);
    snprintf(rd->err_type, sizeof rd->err_type, "%s", type);
    rd->err_file = f;
    rd->err_line = line;
}

static const char *type_name(csv_type t)
{
    switch (t) {
    case CT_INT64: return "int64";
    case CT_FLOAT64: return "float64";
    case CT_BOOL: return "bool";
    case CT_TEXT: return "str";
    case CT_DATE: return "datetime";
    default: return "?";
    }
}

/* ---- files ----------------------------------------------------------------------------- */

/* pread all of [off, off + n) into p; 0 or an errno */
static int read_at(int fd, char *p, int64_t off, int64_t n)
{
    while (n > 0) {
        ssize_t k = pread(fd, p, (size_t)n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno;
        if (k == 0)
            return EIO; /* the file shrank under us */
        p += k;
        off += k;
        n -= k;
    }
    return 0;
}

/* Open and check one file on this rank (a local failure: agreed later). */
static int open_file(kd_cmd *c, csv_file *f)
{
    f->fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return kd_fail(c, "FileNotFoundError", "read_csv: file '%.300s' does not exist "
                           "(paths are read by kodiakd, on the server's filesystem)", f->path);
        if (e == EACCES || e == EPERM)
            return kd_fail(c, "PermissionError", "read_csv: file '%.300s' cannot be read by "
                           "kodiakd's user (uid %u): %s", f->path, (unsigned)geteuid(),
                           strerror(e));
        return kd_fail(c, "ValueError", "read_csv: cannot open '%.300s': %s", f->path,
                       strerror(e));
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return kd_fail(c, "ValueError", "read_csv: cannot stat '%.300s': %s", f->path,
                       strerror(errno));
    if (!S_ISREG(st.st_mode))
        return kd_fail(c, "ValueError", "read_csv: '%.300s' is not a regular file (a "
                       "directory, device or pipe)", f->path);
    f->size = (int64_t)st.st_size;
    return 0;
}

/* Whether p[0..n) is UTF-8 (column names travel in the JSON reply). */
static bool utf8_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 0 : (c >= 0xC2 && c < 0xE0) ? 1 : (c >> 4) == 14 ? 2
                 : (c >= 0xF0 && c <= 0xF4) ? 3 : 9;
        if (k == 9)
            return false;
        for (size_t j = 1; j <= k; j++)
            if (i + j >= n || (p[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* Parse file f's header (every rank the same). Names are malloc'd into
 * *names (ncols of them). */
static int read_header(kd_cmd *c, csv_file *f, char ***names, int *ncols)
{
    int64_t want = f->size < (1 << 16) ? f->size : (1 << 16);
    *names = NULL;
    *ncols = 0;
    if (f->size == 0)
        return kd_fail(c, "ValueError", "read_csv: file '%.300s' is empty: no columns to "
                       "parse (a CSV file starts with a header line)", f->path);
    for (;;) {
        char *buf = malloc((size_t)want);
        if (!buf)
            return kd_fail(c, "MemoryError", "read_csv: out of memory reading a header");
        int e = read_at(f->fd, buf, 0, want);
        if (e) {
            free(buf);
            return kd_fail(c, "ValueError", "read_csv: cannot read '%.300s': %s", f->path,
                           strerror(e));
        }
        kd_csv_reader r;
        if (kd_csv_init(&r, buf, (size_t)want, 1, KD_CSV_MAX_COLS + 1)) {
            free(buf);
            return kd_fail(c, "MemoryError", "read_csv: out of memory reading a header");
        }
        int nf = kd_csv_next(&r);
        bool cut = want < f->size && (nf == KD_CSV_ERR_QUOTE || nf == KD_CSV_END ||
                                      (nf > 0 && r.pos == r.end));
        if (cut && want < (int64_t)KD_CSV_MAX_ROW + 2) {
            kd_csv_free(&r);
            free(buf);
            want = want * 4 < f->size ? want * 4 : f->size;
            continue;
        }
        int rc = 0;
        if (nf == KD_CSV_END)
            rc = kd_fail(c, "ValueError", "read_csv: file '%.300s' holds no header line (only "
                         "blank lines): no columns to parse", f->path);
        else if (nf == KD_CSV_ERR_QUOTE)
            rc = kd_fail(c, "ValueError", "read_csv: file '%.300s', line 1: the header ends "
                         "inside a quoted field", f->path);
        else if (nf == KD_CSV_ERR_LONG || cut)
            rc = kd_fail(c, "ValueError", "read_csv: file '%.300s', line 1: the header is "
                         "longer than %u bytes", f->path, KD_CSV_MAX_ROW);
        else if (nf == KD_CSV_ERR_NOMEM)
            rc = kd_fail(c, "MemoryError", "read_csv: out of memory reading a header");
        else if (nf > KD_CSV_MAX_COLS)
            rc = kd_fail(c, "ValueError", "read_csv: file '%.300s', line 1: %d columns, more "
                         "than the %d allowed", f->path, nf, KD_CSV_MAX_COLS);
        char **v = rc ? NULL : calloc((size_t)nf, sizeof *v);
        if (!rc && !v)
            rc = kd_fail(c, "MemoryError", "read_csv: out of memory reading a header");
        for (int j = 0; !rc && j < nf; j++) {
            const kd_csv_field *fl = &r.fields[j];
            if (!utf8_ok((const unsigned char *)fl->p, fl->len) || memchr(fl->p, 0, fl->len))
                rc = kd_fail(c, "ValueError", "read_csv: file '%.300s', line 1, column %d: "
                             "the column name is not UTF-8 text", f->path, j + 1);
            else if (!(v[j] = strndup(fl->p, fl->len)))
                rc = kd_fail(c, "MemoryError", "read_csv: out of memory reading a header");
            for (int k = 0; !rc && k < j; k++)
                if (strcmp(v[k], v[j]) == 0)
                    rc = kd_fail(c, "ValueError", "read_csv: file '%.300s', line 1: column "
                                 "name '%.100s' appears twice (columns %d and %d)", f->path,
                                 v[j], k + 1, j + 1);
        }
        if (!rc) {
            f->data0 = r.pos - buf;
            f->data_line = r.line;
            *names = v;
            *ncols = nf;
        } else if (v) {
            for (int j = 0; j < nf; j++)
                free(v[j]);
            free(v);
        }
        kd_csv_free(&r);
        free(buf);
        return rc;
    }
}

static void free_names(char **v, int n)
{
    if (!v)
        return;
    for (int j = 0; j < n; j++)
        free(v[j]);
    free(v);
}

/* ---- arguments --------------------------------------------------------------------------- */

static int name_index(csv_read *rd, const char *name)
{
    for (int j = 0; j < rd->ncols; j++)
        if (strcmp(rd->names[j], name) == 0)
            return j;
    return -1;
}

/* A JSON list of strings at key (absent or null: *n = -1). */
static int str_list(kd_cmd *c, const char *key, json_object **o, int *n)
{
    *o = NULL;
    *n = -1;
    if (!kd_has_arg(c, key))
        return 0;
    json_object_object_get_ex(c->args, key, o);
    if (!json_object_is_type(*o, json_type_array))
        return kd_fail(c, "TypeError", "read_csv: '%s' must be a list of strings", key);
    size_t len = json_object_array_length(*o);
    if (len > (size_t)(key[0] == 'f' ? CSV_MAX_FILES : KD_CSV_MAX_COLS))
        return kd_fail(c, "ValueError", "read_csv: too many entries in '%s' (%zu)", key, len);
    for (size_t i = 0; i < len; i++)
        if (!json_object_is_type(json_object_array_get_idx(*o, i), json_type_string))
            return kd_fail(c, "TypeError", "read_csv: '%s' must be a list of strings", key);
    *n = (int)len;
    return 0;
}

/* usecols, dtypes, parse_dates against the header: which columns, which types */
static int choose_columns(csv_read *rd)
{
    kd_cmd *c = rd->c;
    json_object *uc, *pd, *dt = NULL;
    int nuc, npd;
    if (str_list(c, "usecols", &uc, &nuc) || str_list(c, "parse_dates", &pd, &npd))
        return -1;
    rd->use = malloc(sizeof(int) * (size_t)rd->ncols);
    rd->cols = calloc((size_t)rd->ncols, sizeof *rd->cols);
    if (!rd->use || !rd->cols)
        return kd_fail(c, "MemoryError", "read_csv: out of memory");
    for (int j = 0; j < rd->ncols; j++)
        rd->use[j] = nuc < 0 ? 0 : -1;
    for (int i = 0; i < nuc; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(uc, (size_t)i));
        int j = name_index(rd, s);
        if (j < 0)
            return kd_fail(c, "ValueError", "read_csv: usecols names column '%.100s', which "
                           "file '%.300s' does not have", s, rd->files[0].path);
        rd->use[j] = 0;
    }
    rd->nuse = 0;
    for (int j = 0; j < rd->ncols; j++)
        if (rd->use[j] == 0) {
            rd->use[j] = rd->nuse;
            rd->cols[rd->nuse].src = j;
            rd->cols[rd->nuse].name = rd->names[j];
            rd->nuse++;
        }
    if (kd_has_arg(c, "dtypes")) {
        json_object_object_get_ex(c->args, "dtypes", &dt);
        if (!json_object_is_type(dt, json_type_object))
            return kd_fail(c, "TypeError", "read_csv: 'dtypes' must map column names to "
                           "dtype names");
        json_object_object_foreach(dt, k, v) {
            int j = name_index(rd, k);
            if (j < 0)
                return kd_fail(c, "ValueError", "read_csv: dtypes names column '%.100s', "
                               "which file '%.300s' does not have", k, rd->files[0].path);
            const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                      : "";
            csv_type t = strcmp(s, "int64") == 0     ? CT_INT64
                         : strcmp(s, "float64") == 0 ? CT_FLOAT64
                         : strcmp(s, "bool") == 0    ? CT_BOOL
                         : strcmp(s, "str") == 0     ? CT_TEXT
                                                     : CT_NONE;
            if (t == CT_NONE)
                return kd_fail(c, "TypeError", "read_csv: dtype '%.40s' of column '%.100s' "
                               "is not one of int64, float64, bool, str", s, k);
            if (rd->use[j] >= 0)
                rd->cols[rd->use[j]].forced = t;
        }
    }
    for (int i = 0; i < npd; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(pd, (size_t)i));
        int j = name_index(rd, s);
        if (j < 0)
            return kd_fail(c, "ValueError", "read_csv: parse_dates names column '%.100s', "
                           "which file '%.300s' does not have", s, rd->files[0].path);
        if (rd->use[j] >= 0)
            rd->cols[rd->use[j]].forced = CT_DATE;
    }
    return 0;
}

/* ---- splitting ---------------------------------------------------------------------------- */

/* Step 2 for every file: the bytes [start, stop) of this rank's rows. The
 * range is read in chunks (twice: once to count quotes, once from its
 * start to find the first row start, usually in the first few bytes). */
static int split_files(csv_read *rd)
{
    kd_cmd *c = rd->c;
    int nf = rd->nfiles, R = c->nranks;
    uint64_t *q = calloc((size_t)nf, sizeof *q), *qb = calloc((size_t)nf, sizeof *qb);
    int64_t *st = malloc(sizeof(int64_t) * (size_t)nf), *all = malloc(sizeof(int64_t) * (size_t)nf * (size_t)R);
    size_t cap = CSV_CHUNK;
    char *buf = malloc(cap);
    int rc = (!q || !qb || !st || !all || !buf) ? kd_fail(c, "MemoryError", "read_csv: out of "
                                                          "memory") : 0;
    for (int i = 0; !rc && i < nf; i++) {
        csv_file *f = &rd->files[i];
        int64_t lo, hi;
        kd_block(f->size - f->data0, R, c->rank, &lo, &hi);
        f->lo = f->data0 + lo;
        f->hi = f->data0 + hi;
        for (int64_t at = f->lo; !rc && at < f->hi; at += (int64_t)cap) {
            int64_t n = f->hi - at < (int64_t)cap ? f->hi - at : (int64_t)cap;
            int e = read_at(f->fd, buf, at, n);
            if (e)
                rc = kd_fail(c, "ValueError", "read_csv: cannot read '%.300s': %s", f->path,
                             strerror(e));
            else
                q[i] += kd_csv_quotes(buf, (size_t)n);
            for (const char *p = buf, *e = buf + n; rd->onepass && p < e; f->ends++) {
                const char *nl = memchr(p, '\n', (size_t)(e - p));
                if (!nl)
                    break;
                p = nl + 1;
            }
            for (const char *p = buf, *e = buf + n; rd->onepass && p < e; f->ends++) {
                const char *cr = memchr(p, '\r', (size_t)(e - p));
                if (!cr)
                    break;
                p = cr + 1;
            }
        }
    }
    if (kd_agree(c, rc))
        goto out;
    MPI_Exscan(q, qb, nf, MPI_UINT64_T, MPI_SUM, c->comm);
    for (int i = 0; !rc && i < nf; i++) {
        csv_file *f = &rd->files[i];
        bool inq = c->rank > 0 && (qb[i] & 1);
        char prev = '\n';
        int e = f->lo > f->data0 ? read_at(f->fd, &prev, f->lo - 1, 1) : 0;
        st[i] = f->hi; /* no row starts in the range, until one is found */
        for (int64_t at = f->lo; !e && at < f->hi; at += (int64_t)cap) {
            int64_t n = f->hi - at < (int64_t)cap ? f->hi - at : (int64_t)cap;
            if ((e = read_at(f->fd, buf, at, n)))
                break;
            size_t k = kd_csv_row_start(buf, (size_t)n, inq, prev);
            if (k < (size_t)n) {
                st[i] = at + (int64_t)k;
                break;
            }
            inq ^= kd_csv_quotes(buf, (size_t)n) & 1;
            prev = buf[n - 1];
        }
        if (e)
            rc = kd_fail(c, "ValueError", "read_csv: cannot read '%.300s': %s", f->path,
                         strerror(e));
    }
    if (kd_agree(c, rc))
        goto out;
    MPI_Allgather(st, nf, MPI_INT64_T, all, nf, MPI_INT64_T, c->comm);
    for (int i = 0; i < nf; i++) {
        csv_file *f = &rd->files[i];
        /* a rank in whose range no row starts takes the next rank's start */
        int64_t next = f->size;
        for (int r = R - 1; r >= 0; r--) {
            int64_t lo, hi;
            kd_block(f->size - f->data0, R, r, &lo, &hi);
            int64_t *s = &all[(size_t)r * (size_t)nf + (size_t)i];
            if (*s == f->data0 + hi)
                *s = next;
            if (r == c->rank) {
                f->start = *s;
                f->stop = next;
            }
            next = *s;
        }
    }
out:
    free(buf);
    free(q);
    free(qb);
    free(st);
    free(all);
    return rc;
}

/* ---- rows ------------------------------------------------------------------------------- */

/* Check one row: its field count and its forced-dtype fields. Returns 0 if
 * good, else -1 with a message (msg) naming the column. kinds[k] gets the
 * classification of inferred column k (pass 1) when kinds != NULL. */
static int check_row(csv_read *rd, kd_csv_reader *r, int nf, int *kinds, char *msg, size_t mlen)
{
    if (nf != rd->ncols) {
        snprintf(msg, mlen, "expected %d fields, saw %d", rd->ncols, nf);
        return -1;
    }
    for (int k = 0; k < rd->nuse; k++) {
        csv_col *col = &rd->cols[k];
        const kd_csv_field *fl = &r->fields[col->src];
        int ok = 0;
        switch (col->forced) {
        case CT_NONE:
            /* once a column holds text, it is text whatever comes */
            if (kinds)
                kinds[k] = (col->kinds & KD_CSV_TEXT) ? KD_CSV_TEXT
                                                      : kd_csv_classify(fl->p, fl->len);
            continue;
        case CT_INT64: {
            int64_t v;
            ok = kd_csv_parse_i64(fl->p, fl->len, &v);
            break;
        }
        case CT_FLOAT64: {
            double v;
            ok = kd_csv_is_na(fl->p, fl->len) ? 0 : kd_csv_parse_f64(fl->p, fl->len, &v);
            break;
        }
        case CT_BOOL: {
            bool v;
            ok = kd_csv_parse_bool(fl->p, fl->len, &v);
            break;
        }
        case CT_DATE: {
            int64_t v;
            ok = kd_csv_is_na(fl->p, fl->len) ? 0 : kd_csv_parse_datetime(fl->p, fl->len, &v);
            break;
        }
        default:
            continue;
        }
        if (ok) {
            snprintf(msg, mlen, "column %d ('%.100s'): cannot read '%.*s'%s as %s%s", col->src + 1,
                     col->name, fl->len > 60 ? 60 : (int)fl->len, fl->p,
                     fl->len > 60 ? "..." : "", type_name(col->forced),
                     kd_csv_is_na(fl->p, fl->len) && col->forced != CT_FLOAT64
                         ? " (a missing value: use float64 for a column with NaN)" : "");
            return -1;
        }
    }
    return 0;
}

/* kd_csv_next's errors as messages; 0 for a row or the end */
static int reader_error(csv_read *rd, int f, kd_csv_reader *r, int nf, int io_err)
{
    if (nf >= 0 || nf == KD_CSV_END)
        return 0;
    if (nf == KD_CSV_ERR_QUOTE)
        csv_error(rd, f, r->row_line, "ValueError", "the file ends inside a quoted field "
                  "(a quote is never closed) in the row starting");
    else if (nf == KD_CSV_ERR_LONG)
        csv_error(rd, f, r->row_line, "ValueError", "the row starting there is longer than "
                  "%u bytes", KD_CSV_MAX_ROW);
    else if (nf == KD_CSV_ERR_IO)
        csv_error(rd, f, r->row_line, "ValueError", "reading the file failed near there: %s",
                  strerror(io_err));
    else
        csv_error(rd, f, r->row_line, "MemoryError", "out of memory in the row starting");
    return -1;
}

static int store_row(csv_read *rd, const kd_csv_reader *r, bool out, int64_t k, bool stop);

/* Pass 1 over this rank's rows of every file (in one-pass mode it also
 * stores every good row's values in the stages, at their local index). */
static void pass1(csv_read *rd)
{
    int64_t k = 0; /* good rows so far, all files */
    int *kinds = calloc((size_t)rd->nuse + 1, sizeof *kinds);
    char msg[300];
    if (!kinds) {
        csv_error(rd, 0, 0, "MemoryError", "out of memory");
        return;
    }
    for (int i = 0; i < rd->nfiles; i++) {
        csv_file *f = &rd->files[i];
        kd_csv_chunks ch;
        if (kd_csv_chunks_init(&ch, f->fd, f->start, f->stop, 0, rd->ncols + 1, CSV_CHUNK)) {
            csv_error(rd, i, 0, "MemoryError", "out of memory");
            break;
        }
        kd_csv_reader *r = &ch.r;
        for (;;) {
            int nf = kd_csv_chunks_next(&ch);
            if (nf == KD_CSV_END || reader_error(rd, i, r, nf, ch.err))
                break;
            int bad;
            if (rd->onepass) {
                bad = nf == rd->ncols ? store_row(rd, r, false, k, true) : 1;
                if (bad == -2) {
                    csv_error(rd, i, r->row_line, "ValueError", "the file changed while it "
                              "was read (more rows than when it was split), at the row "
                              "starting");
                    break;
                }
                if (bad < 0) {
                    csv_error(rd, i, r->row_line, "MemoryError", "out of memory for the text "
                              "of the row starting");
                    break;
                }
                /* the message of a bad row is check_row's (its values again:
                 * only for this row) */
                if (bad && !check_row(rd, r, nf, NULL, msg, sizeof msg))
                    snprintf(msg, sizeof msg, "a value is not of its column's dtype");
            } else {
                bad = check_row(rd, r, nf, kinds, msg, sizeof msg);
            }
            if (bad) {
                if (!rd->skip) {
                    csv_error(rd, i, r->row_line, "ValueError", "%s", msg);
                    break;
                }
                rd->skipped++;
                continue;
            }
            for (int j = 0; !rd->onepass && j < rd->nuse; j++)
                rd->cols[j].kinds |= kinds[j];
            f->nrows++;
            k++;
        }
        f->lines = r->line;
        f->stray = r->stray_quote;
        kd_csv_chunks_free(&ch);
        if (rd->err_file >= 0)
            break;
    }
    free(kinds);
}

/* The dtype pandas infers from the kinds of a column's fields. */
static csv_type infer(int kinds, int64_t total_rows)
{
    int vals = kinds & ~(KD_CSV_NA | KD_CSV_NOTINT);
    if (total_rows == 0)
        return CT_TEXT; /* pandas: object columns of length 0 */
    if (vals == 0)
        return CT_FLOAT64; /* all missing: NaN */
    if (vals & KD_CSV_TEXT)
        return CT_TEXT;
    if (vals & KD_CSV_BOOL)
        return (vals == KD_CSV_BOOL && !(kinds & KD_CSV_NA)) ? CT_BOOL : CT_TEXT;
    if (!(kinds & (KD_CSV_NOTINT | KD_CSV_NA)))
        return CT_INT64;
    return CT_FLOAT64;
}

/* ---- text interning ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *p, size_t n)
{
    /* 8 bytes at a time, each word mixed by a multiply (wyhash-like) */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    /* the last 0..7 bytes: two loads that may overlap, no memcpy of a
     * variable length (a call) */
    uint64_t w = 0;
    size_t t = n - i;
    if (t >= 4) {
        uint32_t a, b;
        memcpy(&a, p + i, 4);
        memcpy(&b, p + n - 4, 4);
        w = (uint64_t)a | (uint64_t)b << 32;
    } else if (t) {
        w = (uint64_t)(uint8_t)p[i] | (uint64_t)(uint8_t)p[i + t / 2] << 8 |
            (uint64_t)(uint8_t)p[n - 1] << 16;
    }
    h ^= w;
    h ^= h >> 33; /* murmur3's fmix64: every bit of the input reaches the low bits */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* Whether a[0..n) and b[0..n) hold the same bytes: short strings (dates,
 * codes) by word loads that may overlap, not by a call to memcmp. */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        uint64_t x, y;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8), memcpy(&y, b + i, 8);
            if (x != y)
                return false;
        }
        memcpy(&x, a + n - 8, 8), memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        uint32_t p, q, r, s;
        memcpy(&p, a, 4), memcpy(&q, b, 4), memcpy(&r, a + n - 4, 4), memcpy(&s, b + n - 4, 4);
        return ((p ^ q) | (r ^ s)) == 0;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* A hash-table slot holds what a lookup needs, so that a hit costs the
 * slot and the string's bytes (two cache misses), a miss only the slot:
 * the top 32 bits of the hash, the string's code + 1 (0: empty), and where
 * its bytes are in the arena (offset << 27 | length). */
typedef struct csv_slot_ {
    uint32_t tag;   /* hash >> 32 */
    uint32_t code1; /* local code + 1; 0 for an empty slot */
    uint64_t where; /* arena offset << 27 | length (a length is at most 2^26) */
} csv_slot;
#define WHERE_LEN(w) ((size_t)((w) & ((1u << 27) - 1)))
#define WHERE_OFF(w) ((size_t)((w) >> 27))

/* The local code of text p[0..n) in column col (added if new), given its
 * hash_bytes() hh; -1 when out of memory. */
static int64_t intern_hashed(csv_col *col, const char *p, size_t n, uint64_t hh)
{
    if (2 * (col->ndist + 1) > col->nslots) {
        size_t ns = col->nslots ? 2 * col->nslots : 1024;
        csv_slot *s = calloc(ns, sizeof *s);
        if (!s)
            return -1;
        for (size_t i = 0; i < col->nslots; i++)
            if (col->slot[i].code1) {
                uint64_t w = col->slot[i].where;
                size_t h = hash_bytes(col->arena + WHERE_OFF(w), WHERE_LEN(w)) & (ns - 1);
                while (s[h].code1)
                    h = (h + 1) & (ns - 1);
                s[h] = col->slot[i];
            }
        free(col->slot);
        col->slot = s;
        col->nslots = ns;
    }
    uint32_t tag = (uint32_t)(hh >> 32);
    size_t h = hh & (col->nslots - 1);
    for (csv_slot *sl = &col->slot[h]; sl->code1; sl = &col->slot[h]) {
        if (sl->tag == tag && WHERE_LEN(sl->where) == n &&
            same_bytes(col->arena + WHERE_OFF(sl->where), p, n))
            return (int64_t)sl->code1 - 1;
        h = (h + 1) & (col->nslots - 1);
    }
    if (col->ndist + 1 >= UINT32_MAX || col->arena_len + n >= (1ull << 37))
        return -1;
    if (col->ndist == col->cap_dist) {
        size_t cap = col->cap_dist ? 2 * col->cap_dist : 256;
        uint64_t *so = realloc(col->soff, cap * sizeof *so);
        if (!so)
            return -1;
        col->soff = so;
        uint32_t *sl = realloc(col->slen, cap * sizeof *sl);
        if (!sl)
            return -1;
        col->slen = sl;
        col->cap_dist = cap;
    }
    if (col->arena_len + n > col->arena_cap) {
        size_t cap = col->arena_cap ? col->arena_cap : 4096;
        while (cap < col->arena_len + n)
            cap *= 2;
        char *a = realloc(col->arena, cap);
        if (!a)
            return -1;
        col->arena = a;
        col->arena_cap = cap;
    }
    memcpy(col->arena + col->arena_len, p, n);
    col->soff[col->ndist] = col->arena_len;
    col->slen[col->ndist] = (uint32_t)n;
    col->slot[h] = (csv_slot){tag, (uint32_t)col->ndist + 1,
                              (uint64_t)col->arena_len << 27 | (uint64_t)n};
    col->arena_len += n;
    return (int64_t)col->ndist++;
}

static int64_t intern(csv_col *col, const char *p, size_t n)
{
    return intern_hashed(col, p, n, hash_bytes(p, n));
}

/* Start loading the slot where text of hash hh is looked up first: the
 * table of a column with many distinct strings is out of the cache, and a
 * row's other fields are converted while the load is under way. */
static inline void intern_prefetch(const csv_col *col, uint64_t hh)
{
    if (col->nslots)
        __builtin_prefetch(&col->slot[hh & (col->nslots - 1)]);
}

/* Field fl of column col as the column's dtype into dst[at] (bool: one
 * byte, the others eight). 0; 1 when the field is not a value of that
 * dtype (stored instead: 0, NaN, false, NaT); -1 when out of memory. */
static inline __attribute__((always_inline)) int convert(csv_col *col, const kd_csv_field *fl, void *dst, int64_t at)
{
    switch (col->type) {
    case CT_INT64:
        if (kd_csv_parse_i64(fl->p, fl->len, &((int64_t *)dst)[at])) {
            ((int64_t *)dst)[at] = 0;
            return 1;
        }
        return 0;
    case CT_FLOAT64: {
        double v;
        int bad = 0;
        if (kd_csv_is_na(fl->p, fl->len) || (bad = kd_csv_parse_f64(fl->p, fl->len, &v)))
            v = NAN;
        ((double *)dst)[at] = v;
        return bad ? 1 : 0;
    }
    case CT_BOOL: {
        bool v = false;
        int bad = kd_csv_parse_bool(fl->p, fl->len, &v);
        ((uint8_t *)dst)[at] = v;
        return bad ? 1 : 0;
    }
    case CT_DATE: {
        int64_t v;
        int bad = 0;
        if (kd_csv_is_na(fl->p, fl->len) || (bad = kd_csv_parse_datetime(fl->p, fl->len, &v)))
            v = INT64_MIN; /* NaT */
        ((int64_t *)dst)[at] = v;
        return bad ? 1 : 0;
    }
    default: {
        bool na = kd_csv_is_na(fl->p, fl->len);
        int64_t code = na ? -1 : intern(col, fl->p, fl->len);
        ((int64_t *)dst)[at] = code;
        return code == -1 && !na ? -1 : 0;
    }
    }
}

/* The values of row r (ncols fields) at index k of the stages (out: of
 * the results' blocks). 0; 1 when a field is not of its column's dtype
 * (stop: then at once, and no text of the row is interned, so that a
 * skipped row adds no category; else every field is stored, the bad ones
 * as convert's fallback); -1 when out of memory; -2 when a stage is full
 * (one pass: the file grew since it was split). */
static int store_row(csv_read *rd, const kd_csv_reader *r, bool out, int64_t k, bool stop)
{
    enum { PRE = 32 };  /* text columns whose lookups are started first */
    uint64_t hh[PRE];
    int nt = 0;
    for (int j = 0; j < rd->nuse && nt < PRE; j++) {
        const csv_col *col = &rd->cols[j];
        const kd_csv_field *fl = &r->fields[col->src];
        if (col->type == CT_TEXT) {
            hh[nt] = hash_bytes(fl->p, fl->len);
            intern_prefetch(col, hh[nt++]);
        }
    }
    if (!out && rd->onepass && rd->nuse && (size_t)k >= rd->cols[0].stage_cap)
        return -2; /* more rows than row ends when the range was split */
    int bad = 0;
    for (int j = 0; j < rd->nuse; j++) {
        csv_col *col = &rd->cols[j];
        if (col->type != CT_TEXT) {
            bad |= convert(col, &r->fields[col->src], out ? col->out->data : col->stage, k);
            if (bad && stop)
                return 1;
        }
    }
    nt = 0;
    for (int j = 0; j < rd->nuse; j++) {
        csv_col *col = &rd->cols[j];
        if (col->type != CT_TEXT)
            continue;
        const kd_csv_field *fl = &r->fields[col->src];
        if (nt == PRE || kd_csv_is_na(fl->p, fl->len)) {
            nt += nt < PRE;
            if (convert(col, fl, out ? col->out->data : col->stage, k))
                return -1;
            continue;
        }
        int64_t code = intern_hashed(col, fl->p, fl->len, hh[nt++]);
        if (code < 0)
            return -1;
        ((int64_t *)(out ? col->out->data : col->stage))[k] = code;
    }
    return bad;
}

/* One pass: this rank's staged rows that fall in its own result block are
 * copied there (the others travel in step 5, as pass 2's staged rows). */
static void place_mine(csv_read *rd)
{
    kd_cmd *c = rd->c;
    int64_t blo, bhi, k = 0;
    kd_block(rd->total_rows, c->nranks, c->rank, &blo, &bhi);
    for (int i = 0; i < rd->nfiles; i++) {
        csv_file *f = &rd->files[i];
        int64_t lo = f->row0 > blo ? f->row0 : blo;
        int64_t hi = f->row0 + f->nrows < bhi ? f->row0 + f->nrows : bhi;
        for (int j = 0; hi > lo && j < rd->nuse; j++) {
            csv_col *col = &rd->cols[j];
            size_t w = col->type == CT_BOOL ? 1 : 8;
            memcpy((char *)col->out->data + (size_t)(lo - blo) * w,
                   (const char *)col->stage + (size_t)(k + lo - f->row0) * w,
                   (size_t)(hi - lo) * w);
        }
        k += f->nrows;
    }
}

/* Pass 2: every good row's values into the columns' staging buffers. */
static int pass2(csv_read *rd)
{
    kd_cmd *c = rd->c;
    char msg[300];
    int64_t k = 0; /* rows done, all files */
    int64_t blo, bhi; /* my result block */
    kd_block(rd->total_rows, c->nranks, c->rank, &blo, &bhi);
    int64_t bn = bhi - blo;
    for (int i = 0; i < rd->nfiles; i++) {
        csv_file *f = &rd->files[i];
        kd_csv_chunks ch;
        if (kd_csv_chunks_init(&ch, f->fd, f->start, f->stop, 0, rd->ncols + 1, CSV_CHUNK))
            return kd_fail(c, "MemoryError", "read_csv: out of memory");
        int64_t g = f->row0;
        for (;;) {
            int nf = kd_csv_chunks_next(&ch);
            if (nf < 0) {
                if (nf != KD_CSV_END) { /* pass 1 read the same bytes without error */
                    kd_csv_chunks_free(&ch);
                    return kd_fail(c, "ValueError", "read_csv: file '%.300s' changed while "
                                   "it was read", f->path);
                }
                break;
            }
            /* pass 1 found every row good unless some were skipped: then
             * the same check leaves out the same rows. The field count is
             * checked always: fields past it are not this row's */
            if (nf != rd->ncols && !rd->skipped_all) {
                kd_csv_chunks_free(&ch);
                return kd_fail(c, "ValueError", "read_csv: file '%.300s' changed while it "
                               "was read", f->path);
            }
            if (rd->skipped_all && check_row(rd, &ch.r, nf, NULL, msg, sizeof msg))
                continue;
            /* a row of my block goes straight into the result, another
             * into staging (at its own index: untouched staging pages are
             * never faulted in), for the MPI_Alltoallv */
            bool mine = g >= blo && g < blo + bn;
            int64_t at = mine ? g - blo : k;
            /* (a value that is not of the dtype cannot happen: pass 1
             * checked it; the fallback stored is never seen) */
            if (store_row(rd, &ch.r, mine, at, false) < 0) {
                kd_csv_chunks_free(&ch);
                return kd_fail(c, "MemoryError", "read_csv: rank %d is out of memory for "
                               "the text of its rows", c->rank);
            }
            k++;
            g++;
        }
        kd_csv_chunks_free(&ch);
        if (g != f->row0 + f->nrows)
            return kd_fail(c, "ValueError", "read_csv: file '%.300s' changed while it was "
                           "read", f->path);
    }
    return 0;
}

static const char *cat_base;
static int cmp_str(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b; /* {offset, length} */
    size_t n = x[1] < y[1] ? x[1] : y[1];
    int d = memcmp(cat_base + x[0], cat_base + y[0], n);
    return d ? d : (x[1] > y[1]) - (x[1] < y[1]);
}

/* Step 4 for one text column: global sorted categories, local codes
 * remapped. Rank 0 appends the categories to (*offs, *bytes). */
static int merge_categories(csv_read *rd, csv_col *col, int64_t **offs, size_t *noffs,
                            char **bytes, size_t *nbytes)
{
    kd_cmd *c = rd->c;
    int R = c->nranks;
    /* my strings, length-prefixed */
    size_t mine = 0;
    for (size_t d = 0; d < col->ndist; d++)
        mine += 4 + col->slen[d];
    int rc = 0;
    if (mine > INT_MAX)
        rc = kd_fail(c, "ValueError", "read_csv: column '%.100s' has more than 2 GiB of "
                     "distinct text on rank %d", col->name, c->rank);
    char *send = rc ? NULL : malloc(mine + 1);
    if (!rc && !send)
        rc = kd_fail(c, "MemoryError", "read_csv: out of memory");
    if (kd_agree(c, rc)) {
        free(send);
        return -1;
    }
    size_t at = 0;
    for (size_t d = 0; d < col->ndist; d++) {
        uint32_t n = col->slen[d];
        memcpy(send + at, &n, 4);
        memcpy(send + at + 4, col->arena + col->soff[d], n);
        at += 4 + n;
    }
    int *cnt = malloc(sizeof(int) * (size_t)R * 2), my = (int)mine;
    int64_t total = 0;
    MPI_Allgather(&my, 1, MPI_INT, cnt ? cnt : &my, cnt ? 1 : 0, MPI_INT, c->comm);
    char *all = NULL;
    uint64_t *ent = NULL;
    if (cnt) {
        for (int r = 0; r < R; r++) {
            cnt[R + r] = (int)total;
            total += cnt[r];
        }
    }
    if (!cnt || total > INT_MAX)
        rc = kd_fail(c, cnt ? "ValueError" : "MemoryError", "read_csv: the distinct text of "
                     "column '%.100s' is over 2 GiB", col->name);
    if (!rc && !(all = malloc((size_t)total + 1)))
        rc = kd_fail(c, "MemoryError", "read_csv: out of memory");
    if (kd_agree(c, rc)) {
        free(send);
        free(cnt);
        free(all);
        return -1;
    }
    MPI_Allgatherv(send, my, MPI_CHAR, all, cnt, cnt + R, MPI_CHAR, c->comm);
    free(send);
    free(cnt);
    /* every string of every rank as {offset, length}; sort; unique */
    size_t n = 0;
    for (int64_t p = 0; p < total; n++) {
        uint32_t l;
        memcpy(&l, all + p, 4);
        p += 4 + l;
    }
    ent = malloc(sizeof(uint64_t) * 2 * (n ? n : 1));
    col->gmap = malloc(sizeof(int64_t) * (col->ndist ? col->ndist : 1));
    rc = (!ent || !col->gmap) ? kd_fail(c, "MemoryError", "read_csv: out of memory") : 0;
    if (kd_agree(c, rc)) {
        free(all);
        free(ent);
        return -1;
    }
    size_t i = 0;
    for (int64_t p = 0; p < total; i++) {
        uint32_t l;
        memcpy(&l, all + p, 4);
        ent[2 * i] = (uint64_t)p + 4;
        ent[2 * i + 1] = l;
        p += 4 + l;
    }
    cat_base = all;
    qsort(ent, n, 2 * sizeof(uint64_t), cmp_str);
    size_t u = 0;
    for (i = 0; i < n; i++)
        if (u == 0 || cmp_str(&ent[2 * (u - 1)], &ent[2 * i]) != 0) {
            ent[2 * u] = ent[2 * i];
            ent[2 * u + 1] = ent[2 * i + 1];
            u++;
        }
    col->ncat = (int64_t)u;
    /* my codes -> global: binary search of each distinct string */
    for (size_t d = 0; d < col->ndist; d++) {
        size_t lo = 0, hi = u;
        uint64_t key[2];
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            size_t l = ent[2 * mid + 1] < col->slen[d] ? ent[2 * mid + 1] : col->slen[d];
            int cmp = memcmp(all + ent[2 * mid], col->arena + col->soff[d], l);
            if (!cmp)
                cmp = (ent[2 * mid + 1] > col->slen[d]) - (ent[2 * mid + 1] < col->slen[d]);
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        (void)key;
        col->gmap[d] = (int64_t)lo;
    }
    /* my rows: in my result block, or staged at their own index */
    int64_t k = 0, *blk = col->out->data, *stg = col->stage;
    for (int fi = 0; fi < rd->nfiles; fi++)
        for (int64_t g = rd->files[fi].row0; g < rd->files[fi].row0 + rd->files[fi].nrows;
             g++, k++) {
            int64_t *p = g >= col->out->lo && g < col->out->lo + col->out->n
                             ? &blk[g - col->out->lo] : &stg[k];
            if (*p >= 0)
                *p = col->gmap[*p];
        }
    if (c->rank == 0) { /* the categories, for the reply */
        size_t more = 0;
        for (i = 0; i < u; i++)
            more += ent[2 * i + 1];
        int64_t *no = realloc(*offs, sizeof(int64_t) * (*noffs + u + 1));
        char *nb = no ? realloc(*bytes, *nbytes + more + 1) : NULL;
        if (no)
            *offs = no;
        if (nb)
            *bytes = nb;
        if (!no || !nb) {
            rc = kd_fail(c, "MemoryError", "read_csv: out of memory");
        } else {
            for (i = 0; i < u; i++) {
                no[(*noffs)++] = (int64_t)*nbytes;
                memcpy(nb + *nbytes, all + ent[2 * i], ent[2 * i + 1]);
                *nbytes += ent[2 * i + 1];
            }
            no[(*noffs)++] = (int64_t)*nbytes;
        }
    }
    free(all);
    free(ent);
    return kd_agree(c, rc);
}

/* ---- the command ----------------------------------------------------------------------- */

static void free_read(csv_read *rd)
{
    for (int i = 0; rd->files && i < rd->nfiles; i++) {
        if (rd->files[i].fd >= 0)
            close(rd->files[i].fd);
    }
    free(rd->files);
    for (int k = 0; rd->cols && k < rd->nuse; k++) {
        csv_col *col = &rd->cols[k];
        if (col->stage_cap)
            kd_free_bytes(col->stage, col->stage_cap * 8);
        else
            kd_free_bytes(col->stage, (size_t)(rd->local_rows ? rd->local_rows : 1) * 8);
        free(col->arena);
        free(col->slot);
        free(col->soff);
        free(col->slen);
        free(col->gmap);
    }
    free(rd->cols);
    free(rd->use);
    free_names(rd->names, rd->ncols);
}

/* Move column col's staged rows into its result's blocks (step 5). */
static void redistribute(csv_read *rd, csv_col *col, int *cnt, int64_t *piece)
{
    kd_cmd *c = rd->c;
    int R = c->nranks;
    int *sc = cnt, *sd = cnt + R, *rc = cnt + 2 * R, *rdis = cnt + 3 * R;
    kd_array *a = col->out;
    size_t w = kd_dtype_size(a->dtype);
    int64_t staged = 0; /* rows of earlier files in my staging */
    for (int i = 0; i < rd->nfiles; i++) {
        csv_file *f = &rd->files[i];
        /* every rank's [row0, row0 + nrows) of this file */
        int64_t mine[2] = {f->row0, f->nrows};
        MPI_Allgather(mine, 2, MPI_INT64_T, piece, 2, MPI_INT64_T, c->comm);
        for (int r = 0; r < R; r++) {
            int64_t rlo, rhi;
            kd_block(a->size, R, r, &rlo, &rhi);
            int64_t lo = f->row0 > rlo ? f->row0 : rlo;
            int64_t hi = f->row0 + f->nrows < rhi ? f->row0 + f->nrows : rhi;
            sc[r] = hi > lo && r != c->rank ? (int)(hi - lo) : 0; /* mine: in place */
            sd[r] = hi > lo ? (int)(staged + lo - f->row0) : 0;
            int64_t slo = piece[2 * r], shi = piece[2 * r] + piece[2 * r + 1];
            lo = slo > a->lo ? slo : a->lo;
            hi = shi < a->lo + a->n ? shi : a->lo + a->n;
            rc[r] = hi > lo && r != c->rank ? (int)(hi - lo) : 0;
            rdis[r] = hi > lo ? (int)(lo - a->lo) : 0;
        }
        MPI_Alltoallv(col->stage, sc, sd, w == 1 ? MPI_UINT8_T : MPI_INT64_T, a->data, rc,
                      rdis, w == 1 ? MPI_UINT8_T : MPI_INT64_T, c->comm);
        staged += f->nrows;
    }
}

int kd_csv_read(kd_cmd *c, kd_csv_table *t)
{
    static bool env_read;
    if (!env_read) { /* KD_CSV_SIMD=0: the tokenizer's scalar way (kd_csv.h) */
        const char *e = getenv("KD_CSV_SIMD");
        kd_csv_scalar = e && !strcmp(e, "0");
        env_read = true;
    }
    memset(t, 0, sizeof *t);
    csv_read rd = {.c = c, .err_file = -1};
    double clock[2] = {0, 0};
    phase(c, "start", clock);
    json_object *fl;
    int nfl;
    int rc = 0;
    if (str_list(c, "files", &fl, &nfl))
        return -1;
    if (nfl < 1)
        return kd_fail(c, nfl < 0 ? "TypeError" : "ValueError", "read_csv: 'files' must be "
                       "a list of one or more file names");
    if (kd_has_arg(c, "on_bad_lines")) {
        const char *s;
        if (kd_arg_str(c, "on_bad_lines", &s))
            return -1;
        if (strcmp(s, "skip") != 0 && strcmp(s, "error") != 0)
            return kd_fail(c, "ValueError", "read_csv: on_bad_lines must be 'error' or "
                           "'skip', not '%.40s'", s);
        rd.skip = s[0] == 's';
    }
    rd.nfiles = nfl;
    rd.files = calloc((size_t)nfl, sizeof *rd.files);
    if (!rd.files)
        return kd_fail(c, "MemoryError", "read_csv: out of memory");
    for (int i = 0; i < nfl; i++) {
        rd.files[i].fd = -1;
        rd.files[i].path = json_object_get_string(json_object_array_get_idx(fl, (size_t)i));
        if (strlen(rd.files[i].path) > CSV_PATH_MAX || !rd.files[i].path[0]) {
            free_read(&rd);
            return kd_fail(c, "ValueError", "read_csv: file name %d is empty or longer than "
                           "%d bytes", i + 1, CSV_PATH_MAX);
        }
    }
    /* 1: open, check, headers */
    for (int i = 0; !rc && i < nfl; i++) {
        csv_file *f = &rd.files[i];
        char **nm;
        int nc;
        if ((rc = open_file(c, f)) || (rc = read_header(c, f, &nm, &nc)))
            break;
        if (i == 0) {
            rd.names = nm;
            rd.ncols = nc;
            continue;
        }
        bool same = nc == rd.ncols;
        for (int j = 0; same && j < nc; j++)
            same = strcmp(nm[j], rd.names[j]) == 0;
        if (!same) {
            char a[200] = "", b[200] = "";
            for (int j = 0; j < rd.ncols && strlen(a) < 150; j++)
                snprintf(a + strlen(a), sizeof a - strlen(a), "%s%.40s", j ? "," : "", rd.names[j]);
            for (int j = 0; j < nc && strlen(b) < 150; j++)
                snprintf(b + strlen(b), sizeof b - strlen(b), "%s%.40s", j ? "," : "", nm[j]);
            rc = kd_fail(c, "ValueError", "read_csv: the columns of file '%.200s' (%s) "
                         "differ from those of file '%.200s' (%s): every file must have the "
                         "same header", f->path, b, rd.files[0].path, a);
        }
        free_names(nm, nc);
    }
    if (kd_agree(c, rc) || kd_agree(c, choose_columns(&rd))) {
        free_read(&rd);
        return -1;
    }
    /* every dtype given (an ingest's later files take the dataset's): no
     * inference, so pass 1 converts the values as it checks them */
    rd.onepass = true;
    for (int k = 0; k < rd.nuse; k++)
        rd.onepass &= rd.cols[k].forced != CT_NONE;
    if (split_files(&rd)) {
        free_read(&rd);
        return -1;
    }
    phase(c, "split", clock);
    /* the stages of one pass: as many rows as row ends in the ranges (+1
     * per file); pages are touched only as rows are stored */
    int64_t bound = 0;
    for (int i = 0; rd.onepass && i < rd.nfiles; i++)
        bound += rd.files[i].ends + 1;
    for (int k = 0; !rc && rd.onepass && k < rd.nuse; k++) {
        rd.cols[k].type = rd.cols[k].forced;
        if (!(rd.cols[k].stage = kd_alloc_bytes((size_t)bound * 8)))
            rc = kd_fail(c, "MemoryError", "read_csv: rank %d is out of memory staging up to "
                         "%lld rows", c->rank, (long long)bound);
        else
            rd.cols[k].stage_cap = (size_t)bound;
    }
    if (kd_agree(c, rc)) {
        free_read(&rd);
        return -1;
    }
    /* 3: pass 1, line numbers, the first error in file order */
    pass1(&rd);
    /* a rank done early sleeps instead of spinning in the next collective:
     * on a crowded machine the others need its core (kd.h) */
    kd_quiet_barrier(c->comm);
    phase(c, "pass 1", clock);
    int nf = rd.nfiles, R = c->nranks;
    int64_t *v = calloc((size_t)nf * 2 + 2, sizeof *v), *vb = calloc((size_t)nf * 2 + 2, sizeof *v);
    if (!v || !vb) { /* tiny: treat as fatal for this rank */
        free(v);
        free(vb);
        free_read(&rd);
        return kd_agree(c, kd_fail(c, "MemoryError", "read_csv: out of memory"));
    }
    for (int i = 0; i < nf; i++) {
        v[2 * i] = rd.files[i].lines;
        v[2 * i + 1] = rd.files[i].nrows;
    }
    MPI_Exscan(v, vb, 2 * nf, MPI_INT64_T, MPI_SUM, c->comm);
    if (c->rank == 0)
        memset(vb, 0, sizeof(int64_t) * 2 * (size_t)nf);
    for (int i = 0; i < nf; i++)
        rd.files[i].line0 = rd.files[i].data_line + vb[2 * i];
    int64_t key = rd.err_file >= 0 ? (int64_t)rd.err_file * R + c->rank : INT64_MAX, first;
    MPI_Allreduce(&key, &first, 1, MPI_INT64_T, MPI_MIN, c->comm);
    if (first != INT64_MAX) {
        if (key == first)
            kd_fail(c, rd.err_type, "read_csv: file '%.300s', line %lld: %s",
                    rd.files[rd.err_file].path,
                    (long long)(rd.files[rd.err_file].line0 + rd.err_line), rd.err_msg);
        kd_agree(c, key == first ? -1 : 0);
        free(v);
        free(vb);
        free_read(&rd);
        return -1;
    }
    /* stray quotes are harmless only when one rank reads all of a file */
    for (int i = 0; i < nf; i++) {
        int64_t lv[2] = {rd.files[i].stray, rd.files[i].stop > rd.files[i].start}, gv[2];
        MPI_Allreduce(lv, gv, 2, MPI_INT64_T, MPI_SUM, c->comm);
        if (gv[0] && gv[1] > 1) {
            kd_fail(c, "ValueError", "read_csv: file '%.300s' has a quote character inside an "
                    "unquoted field; kodiak splits a file between ranks by counting quotes, "
                    "so it can read such a file with one rank only (or quote those fields)",
                    rd.files[i].path);
            free(v);
            free(vb);
            free_read(&rd);
            return -1;
        }
    }
    /* global row numbers: files in order, ranks in order within a file */
    int64_t *tot = calloc((size_t)nf + 1, sizeof *tot);
    int64_t *kinds = calloc((size_t)rd.nuse + 1, sizeof *kinds);
    int64_t *gk = calloc((size_t)rd.nuse + 1, sizeof *gk);
    rc = (!tot || !kinds || !gk) ? kd_fail(c, "MemoryError", "read_csv: out of memory") : 0;
    if (kd_agree(c, rc)) {
        free(tot), free(kinds), free(gk), free(v), free(vb);
        free_read(&rd);
        return -1;
    }
    for (int i = 0; i < nf; i++)
        tot[i] = rd.files[i].nrows;
    tot[nf] = rd.skipped;
    MPI_Allreduce(MPI_IN_PLACE, tot, nf + 1, MPI_INT64_T, MPI_SUM, c->comm);
    int64_t base = 0;
    for (int i = 0; i < nf; i++) {
        rd.files[i].row0 = base + vb[2 * i + 1];
        base += tot[i];
        rd.local_rows += rd.files[i].nrows;
    }
    int64_t total_rows = base, skipped = tot[nf];
    rd.total_rows = total_rows;
    rd.skipped_all = skipped;
    for (int k = 0; k < rd.nuse; k++)
        kinds[k] = rd.cols[k].kinds;
    MPI_Allreduce(kinds, gk, rd.nuse, MPI_INT64_T, MPI_BOR, c->comm);
    for (int k = 0; k < rd.nuse; k++) {
        csv_col *col = &rd.cols[k];
        col->type = col->forced != CT_NONE ? col->forced : infer((int)gk[k], total_rows);
    }
    free(tot), free(kinds), free(gk), free(v), free(vb);
    /* 4: staging, pass 2, categories */
    if (rd.local_rows > INT_MAX || total_rows / R + 1 > INT_MAX)
        rc = kd_fail(c, "ValueError", "read_csv: more than 2^31 rows on one rank; use more "
                     "ranks");
    for (int k = 0; !rc && !rd.onepass && k < rd.nuse; k++) {
        rd.cols[k].stage = kd_alloc_bytes((size_t)(rd.local_rows ? rd.local_rows : 1) * 8);
        if (!rd.cols[k].stage)
            rc = kd_fail(c, "MemoryError", "read_csv: rank %d is out of memory staging %lld "
                         "rows", c->rank, (long long)rd.local_rows);
    }
    if (kd_agree(c, rc)) {
        free_read(&rd);
        return -1;
    }
    /* the results (temps until registered at the end), written by pass 2 */
    for (int k = 0; k < rd.nuse; k++) {
        csv_type t = rd.cols[k].type;
        rd.cols[k].out = kd_new_array(c, t == CT_FLOAT64 ? KD_FLOAT64 : t == CT_BOOL ? KD_BOOL
                                                                                     : KD_INT64,
                                      total_rows);
        if (!rd.cols[k].out) {
            free_read(&rd);
            return -1;
        }
    }
    phase(c, "infer+alloc", clock);
    if (rd.onepass)
        place_mine(&rd);
    rc = rd.onepass ? 0 : pass2(&rd);
    kd_quiet_barrier(c->comm);
    if (kd_agree(c, rc)) {
        free_read(&rd);
        return -1;
    }
    phase(c, "pass 2", clock);
    int64_t *offs = NULL;
    char *bytes = NULL;
    size_t noffs = 0, nbytes = 0;
    for (int k = 0; k < rd.nuse; k++)
        if (rd.cols[k].type == CT_TEXT &&
            merge_categories(&rd, &rd.cols[k], &offs, &noffs, &bytes, &nbytes)) {
            free(offs);
            free(bytes);
            free_read(&rd);
            return -1;
        }
    phase(c, "categories", clock);
    int *cnt = malloc(sizeof(int) * 4 * (size_t)R);
    int64_t *piece = malloc(sizeof(int64_t) * 2 * (size_t)R);
    if (!piece) {
        free(cnt);
        cnt = NULL;
    }
    if (kd_agree(c, cnt ? 0 : kd_fail(c, "MemoryError", "read_csv: out of memory"))) {
        free(cnt), free(piece), free(offs), free(bytes);
        free_read(&rd);
        return -1;
    }
    t->ncols = rd.nuse;
    t->col = calloc((size_t)(rd.nuse ? rd.nuse : 1), sizeof *t->col);
    rc = t->col ? 0 : kd_fail(c, "MemoryError", "read_csv: out of memory");
    for (int k = 0; !rc && k < rd.nuse; k++)
        if (!(t->col[k].name = strdup(rd.cols[k].name)))
            rc = kd_fail(c, "MemoryError", "read_csv: out of memory");
    if (kd_agree(c, rc)) {
        free(cnt), free(piece), free(offs), free(bytes);
        free_read(&rd);
        kd_csv_table_free(t);
        return -1;
    }
    for (int k = 0; k < rd.nuse; k++) {
        csv_col *col = &rd.cols[k];
        redistribute(&rd, col, cnt, piece);
        t->col[k].kind = col->type == CT_TEXT ? KD_CSV_CATEGORICAL
                         : col->type == CT_DATE ? KD_CSV_DATETIME : KD_CSV_PLAIN;
        t->col[k].array = col->out;
        t->col[k].ncategories = col->type == CT_TEXT ? col->ncat : 0;
    }
    free(cnt);
    free(piece);
    phase(c, "alltoallv", clock);
    t->rows = total_rows;
    t->skipped = skipped;
    t->cat_offsets = offs;
    t->ncat_offsets = noffs;
    t->cat_bytes = bytes;
    t->ncat_bytes = nbytes;
    free_read(&rd);
    return 0;
}

void kd_csv_table_free(kd_csv_table *t)
{
    for (int k = 0; t->col && k < t->ncols; k++)
        free(t->col[k].name);
    free(t->col);
    free(t->cat_offsets);
    free(t->cat_bytes);
    memset(t, 0, sizeof *t);
}

/* read_csv(files, usecols?, dtypes?, parse_dates?, on_bad_lines?): the
 * columns as pdarrays (registered only now, when every rank succeeded) */
static int cmd_read_csv(kd_cmd *c)
{
    kd_csv_table t;
    if (kd_csv_read(c, &t))
        return -1;
    json_object *cols = c->rank == 0 ? json_object_new_array() : NULL;
    for (int k = 0; k < t.ncols; k++) {
        char key[32];
        snprintf(key, sizeof key, "col%d", k);
        kd_result_array(c, key, t.col[k].array);
        if (cols) {
            static const char *kinds[] = {"array", "datetime", "categorical"};
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(t.col[k].name));
            json_object_object_add(o, "key", json_object_new_string(key));
            json_object_object_add(o, "kind", json_object_new_string(kinds[t.col[k].kind]));
            if (t.col[k].kind == KD_CSV_CATEGORICAL)
                json_object_object_add(o, "ncategories",
                                       json_object_new_int64(t.col[k].ncategories));
            json_object_array_add(cols, o);
        }
    }
    kd_result_set(c, "columns", cols);
    kd_result_i64(c, "rows", t.rows);
    kd_result_i64(c, "skipped", t.skipped);
    if (c->rank == 0) { /* categories: offsets (int64), then bytes; the reply frees them */
        kd_result_frame(c, t.cat_offsets ? (void *)t.cat_offsets : calloc(1, 8),
                        t.ncat_offsets * 8);
        kd_result_frame(c, t.cat_bytes ? t.cat_bytes : calloc(1, 1), t.ncat_bytes);
        t.cat_offsets = NULL;
        t.cat_bytes = NULL;
    }
    kd_csv_table_free(&t);
    return 0;
}

void kd_register_csv(void)
{
    kd_register("read_csv", cmd_read_csv);
}
