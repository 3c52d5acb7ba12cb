/* SPDX-License-Identifier: Apache-2.0 */
/* kd_csv.c — tokenizing CSV text and reading its values as pandas does
 * (the interface and the dialect are described in kd_csv.h).
 *
 * Speed: an unquoted field is found eight bytes at a time (a word compare
 * with each special byte; a byte-class table for the last few), a quoted
 * one without escapes with memchr; fields are spans into the text,
 * so a row costs no allocation. Only a quoted field with "" inside, or with
 * text after its closing quote, is copied (into a scratch area reused by
 * every row). Numbers use Clinger's exact fast path when the decimal has at
 * most 19 digits and a small exponent, and glibc's correctly rounded strtod
 * otherwise, so every float is the nearest double to its text (what pandas
 * gives with float_precision="round_trip"). */
#define _GNU_SOURCE
#include "kd_csv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* bytes that end an unquoted field's plain run: separator, row ends,
 * quote, NUL */
static const uint8_t special[256] = {[','] = 1, ['\n'] = 1, ['\r'] = 1, ['"'] = 1, [0] = 1};

int kd_csv_init(kd_csv_reader *r, const char *p, size_t n, int64_t line, int maxfields)
{
    memset(r, 0, sizeof *r);
    r->pos = p;
    r->end = p + n;
    r->line = line;
    r->row_line = line;
    r->maxfields = maxfields;
    r->fields = malloc(sizeof *r->fields * (size_t)(maxfields > 0 ? maxfields : 1));
    return r->fields ? 0 : -1;
}

void kd_csv_free(kd_csv_reader *r)
{
    free(r->fields);
    free(r->scratch);
    r->fields = NULL;
    r->scratch = NULL;
}

uint64_t kd_csv_quotes(const char *p, size_t n)
{
    uint64_t k = 0;
    const char *e = p + n;
    while (p < e && (p = memchr(p, '"', (size_t)(e - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

uint64_t kd_csv_lines(const char *p, size_t n)
{
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n' || (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')))
            k++;
    return k;
}

size_t kd_csv_row_start(const char *p, size_t n, bool in_quotes, char prev)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!in_quotes && (prev == '\n' || (prev == '\r' && c != '\n')))
            return i;
        if (c == '"')
            in_quotes = !in_quotes;
        prev = c;
    }
    return n;
}

/* The first byte at or after p (before end) that ends an unquoted field's
 * plain run (special[]), or end. Eight bytes at a time where eight are
 * left: a byte equal to c is a zero byte of w ^ c*0x01..01, and the lowest
 * flagged byte of (x - 0x01..01) & ~x & 0x80..80 is exactly the lowest
 * zero byte of x (borrows only flag bytes above it). */
static inline const char *plain_run(const char *p, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t w, m = 0;
        memcpy(&w, p, 8);
        static const uint8_t cs[] = {',', '\n', '\r', '"', 0};
        for (size_t i = 0; i < sizeof cs; i++) {
            uint64_t x = w ^ (cs[i] * ones);
            m |= (x - ones) & ~x & highs;
        }
        if (m)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && !special[(uint8_t)*p])
        p++;
    return p;
}

/* 1: plain_run only, not the 64-byte windows below (KD_CSV_SIMD=0 in
 * kodiakd's environment; the tests compare both ways). */
bool kd_csv_scalar;

#if defined(__SSE2__)
/* Bit i set where p[i] (i < 64) ends a plain run: 16 bytes at a time. */
static inline uint64_t special_mask64(const char *p)
{
    const __m128i comma = _mm_set1_epi8(','), lf = _mm_set1_epi8('\n'),
                  cr = _mm_set1_epi8('\r'), quote = _mm_set1_epi8('"'), zero = _mm_setzero_si128();
    uint64_t m = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
        __m128i x = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, comma), _mm_cmpeq_epi8(v, lf)),
                                 _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr),
                                                           _mm_cmpeq_epi8(v, quote)),
                                              _mm_cmpeq_epi8(v, zero)));
        m |= (uint64_t)(uint32_t)_mm_movemask_epi8(x) << (16 * i);
    }
    return m;
}
#endif

/* plain_run's answer, from a window of 64 bytes at *wb whose run-ending
 * bytes are the set bits of *wm (a row's fields are a few bytes each:
 * one window serves several of them; *wb NULL: none yet). The window is
 * the caller's, for one row of one text: never kept across texts. */
static inline const char *plain_run_w(const char *p, const char *end, const char **wb,
                                      uint64_t *wm)
{
#if defined(__SSE2__)
    if (!kd_csv_scalar)
        for (;;) {
            if (*wb && p >= *wb && p < *wb + 64) {
                uint64_t m = *wm >> (p - *wb);
                if (m)
                    return p + __builtin_ctzll(m);
                p = *wb + 64;
            }
            if (end - p < 64)
                break;
            *wb = p;
            *wm = special_mask64(p);
        }
#else
    (void)wb;
    (void)wm;
#endif
    return plain_run(p, end);
}

static int scratch_put(kd_csv_reader *r, char c)
{
    if (r->scratch_len == r->scratch_cap) {
        size_t cap = r->scratch_cap ? 2 * r->scratch_cap : 256;
        char *s = realloc(r->scratch, cap);
        if (!s)
            return -1;
        r->scratch = s;
        r->scratch_cap = cap;
    }
    r->scratch[r->scratch_len++] = c;
    return 0;
}

/* A quoted field that needs copying: "" escapes, or text after the closing
 * quote. *pp is at the opening quote; on return it is at the field's end.
 * The field's bytes are appended to the scratch area. */
static int slow_quoted(kd_csv_reader *r, const char **pp, const char *row0)
{
    const char *p = *pp + 1, *end = r->end;
    bool inq = true, cut = false;
    for (;;) {
        if (p >= end) {
            if (inq)
                return KD_CSV_ERR_QUOTE;
            break;
        }
        char c = *p;
        if (inq) {
            if (c == '"') {
                if (p + 1 < end && p[1] == '"') {
                    c = '"';
                    p++;
                } else {
                    inq = false;
                    p++;
                    continue;
                }
            } else if (c == '\n' || (c == '\r' && !(p + 1 < end && p[1] == '\n'))) {
                r->line++;
            }
        } else {
            if (c == ',' || c == '\n' || c == '\r')
                break;
            if (c == '"')
                r->stray_quote = true;
        }
        cut |= c == '\0';
        if (!cut && scratch_put(r, c))
            return KD_CSV_ERR_NOMEM;
        p++;
        if ((size_t)(p - row0) > KD_CSV_MAX_ROW)
            return KD_CSV_ERR_LONG;
    }
    *pp = p;
    return 0;
}

int kd_csv_next(kd_csv_reader *r)
{
    const char *p = r->pos, *end = r->end;
    for (;;) { /* skip lines of nothing but spaces and tabs */
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q >= end) {
            r->pos = end;
            r->row_begin = p;
            r->row_line = r->line;
            return KD_CSV_END;
        }
        if (*q == '\r' && q + 1 == end) {
            /* the last byte: a lone "\r" ends the line here, but a chunk
             * reader must read it again with what follows ("\r\n") */
            r->pos = end;
            r->row_begin = p;
            r->row_line = r->line++;
            return KD_CSV_END;
        }
        if (*q == '\n' || *q == '\r') {
            p = q + 1;
            if (*q == '\r' && p < end && *p == '\n')
                p++;
            r->line++;
            continue;
        }
        break;
    }
    const char *row0 = p;
    r->row_begin = p;
    r->row_line = r->line;
    r->scratch_len = 0;
    int nf = 0;
    const char *wb = NULL; /* plain_run_w's window, for this row */
    uint64_t wm = 0;
    for (;;) {
        const char *fs = p;
        size_t flen;
        uint8_t how = 0; /* 1: quoted, 3: quoted and in scratch at offset fs */
        size_t soff = 0;
        if (p < end && *p == '"') {
            const char *q = p + 1;
            const char *cl = memchr(q, '"', (size_t)(end - q));
            if (!cl)
                return KD_CSV_ERR_QUOTE;
            if (cl + 1 < end && cl[1] != ',' && cl[1] != '\n' && cl[1] != '\r') {
                soff = r->scratch_len;
                int rc = slow_quoted(r, &p, row0);
                if (rc)
                    return rc;
                flen = r->scratch_len - soff;
                how = 3;
            } else {
                r->line += (int64_t)kd_csv_lines(q, (size_t)(cl - q));
                fs = q;
                const char *nul = memchr(q, 0, (size_t)(cl - q));
                flen = (size_t)((nul ? nul : cl) - q);
                p = cl + 1;
                how = 1;
            }
        } else {
            const char *nul = NULL;
            for (;;) {
                p = plain_run_w(p, end, &wb, &wm);
                if (p < end && (*p == '"' || *p == '\0')) {
                    if (*p == '"')
                        r->stray_quote = true;
                    else if (!nul)
                        nul = p;
                    p++;
                    continue;
                }
                break;
            }
            flen = (size_t)((nul ? nul : p) - fs);
        }
        if ((size_t)(p - row0) > KD_CSV_MAX_ROW)
            return KD_CSV_ERR_LONG;
        if (nf < r->maxfields) {
            kd_csv_field *f = &r->fields[nf];
            f->p = how == 3 ? (const char *)(uintptr_t)soff : fs;
            f->len = (uint32_t)flen;
            f->quoted = how;
        }
        nf++;
        if (p >= end)
            break;
        if (*p == ',') {
            p++;
            continue;
        }
        /* a row end */
        if (*p == '\r' && p + 1 < end && p[1] == '\n')
            p++;
        p++;
        r->line++;
        break;
    }
    r->pos = p;
    int stored = nf < r->maxfields ? nf : r->maxfields;
    for (int i = 0; i < stored; i++)
        if (r->fields[i].quoted == 3) {
            r->fields[i].p = r->scratch + (uintptr_t)r->fields[i].p;
            r->fields[i].quoted = 1;
        }
    return nf;
}

/* ---- rows of a file, in chunks ------------------------------------------------------ */

int kd_csv_chunks_init(kd_csv_chunks *k, int fd, int64_t start, int64_t stop, int64_t line,
                       int maxfields, size_t chunk)
{
    memset(k, 0, sizeof *k);
    k->fd = fd;
    k->next = start;
    k->stop = stop;
    k->cap = chunk < 16 ? 16 : chunk;
    k->buf = malloc(k->cap);
    if (!k->buf || kd_csv_init(&k->r, k->buf, 0, line, maxfields)) {
        free(k->buf);
        k->buf = NULL;
        return -1;
    }
    return 0;
}

void kd_csv_chunks_free(kd_csv_chunks *k)
{
    kd_csv_free(&k->r);
    free(k->buf);
    k->buf = NULL;
}

/* Keep the bytes from `from` on, read more after them. */
static int refill(kd_csv_chunks *k, const char *from, int64_t line)
{
    size_t keep = (size_t)(k->r.end - from);
    if (keep > (size_t)KD_CSV_MAX_ROW + 2)
        return KD_CSV_ERR_LONG; /* one row, already longer than any may be */
    if (keep > k->cap / 2) {
        char *b = malloc(2 * k->cap);
        if (!b)
            return KD_CSV_ERR_NOMEM;
        memcpy(b, from, keep);
        free(k->buf);
        k->buf = b;
        k->cap *= 2;
    } else {
        memmove(k->buf, from, keep);
    }
    size_t want = k->cap - keep;
    if ((int64_t)want > k->stop - k->next)
        want = (size_t)(k->stop - k->next);
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(k->fd, k->buf + keep + got, want - got, (off_t)(k->next + (int64_t)got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            k->err = n < 0 ? errno : EIO; /* EIO: the file shrank */
            return KD_CSV_ERR_IO;
        }
        got += (size_t)n;
    }
    k->next += (int64_t)got;
    k->r.pos = k->buf;
    k->r.end = k->buf + keep + got;
    k->r.line = line;
    return 0;
}

int kd_csv_chunks_next(kd_csv_chunks *k)
{
    for (;;) {
        bool more = k->next < k->stop;
        int nf = kd_csv_next(&k->r);
        if (!more || nf == KD_CSV_ERR_NOMEM || nf == KD_CSV_ERR_LONG)
            return nf;
        /* the end of the chunk may have cut the row (or a "\r\n", or the
         * spaces that begin a row): read it again after a refill */
        if (nf >= 0 && k->r.pos < k->r.end)
            return nf;
        int rc = refill(k, k->r.row_begin, k->r.row_line);
        if (rc)
            return rc;
    }
}

/* ---- values ---------------------------------------------------------------------- */

static inline bool eq(const char *p, size_t n, const char *s, size_t len)
{
    if (n != len)
        return false;
    for (size_t i = 0; i < n; i++) /* short words: no call to memcmp */
        if (p[i] != s[i])
            return false;
    return true;
}
#define EQ(p, n, lit) eq(p, n, lit, sizeof lit - 1)

bool kd_csv_is_na(const char *p, size_t n)
{
    /* pandas' STR_NA_VALUES (1.5), looked at only when the first byte can
     * start one: most fields are out after one comparison */
    if (n == 0)
        return true;
    if (n > 8)
        return false;
    switch (p[0]) {
    case '#': return EQ(p, n, "#N/A") || EQ(p, n, "#N/A N/A") || EQ(p, n, "#NA");
    case '-': return EQ(p, n, "-1.#IND") || EQ(p, n, "-1.#QNAN") || EQ(p, n, "-NaN") ||
                     EQ(p, n, "-nan");
    case '1': return EQ(p, n, "1.#IND") || EQ(p, n, "1.#QNAN");
    case '<': return EQ(p, n, "<NA>");
    case 'N': return EQ(p, n, "N/A") || EQ(p, n, "NA") || EQ(p, n, "NULL") ||
                     EQ(p, n, "NaN") || EQ(p, n, "None");
    case 'n': return EQ(p, n, "n/a") || EQ(p, n, "nan") || EQ(p, n, "null");
    default: return false;
    }
}

int kd_csv_parse_bool(const char *p, size_t n, bool *v)
{
    if (n != 4 && n != 5)
        return -1;
    if (EQ(p, n, "True") || EQ(p, n, "TRUE") || EQ(p, n, "true")) {
        *v = true;
        return 0;
    }
    if (EQ(p, n, "False") || EQ(p, n, "FALSE") || EQ(p, n, "false")) {
        *v = false;
        return 0;
    }
    return -1;
}

static inline bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

static void trim(const char **p, size_t *n)
{
    while (*n && is_space(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_space((*p)[*n - 1]))
        (*n)--;
}

/* 0: an int64; -1: not an integer; -2: integer digits past int64 */
static int parse_int(const char *p, size_t n, int64_t *v)
{
    trim(&p, &n);
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    if (i == n)
        return -1;
    uint64_t m = 0;
    bool over = false;
    for (; i < n; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (d > 9)
            return -1;
        if (m > (UINT64_MAX - d) / 10)
            over = true;
        else
            m = m * 10 + d;
    }
    if (over || m > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return -2;
    *v = neg ? (int64_t)(0 - m) : (int64_t)m;
    return 0;
}

int kd_csv_parse_i64(const char *p, size_t n, int64_t *v)
{
    return parse_int(p, n, v) == 0 ? 0 : -1;
}

static bool ieq(const char *p, size_t n, const char *s, size_t len)
{
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != s[i])
            return false;
    return true;
}

int kd_csv_parse_f64(const char *p, size_t n, double *v)
{
    /* inf and infinity, any case, signed, with no spaces (as pandas) */
    {
        const char *q = p;
        size_t k = n;
        bool neg = false;
        if (k && (*q == '+' || *q == '-')) {
            neg = *q == '-';
            q++;
            k--;
        }
        if (ieq(q, k, "inf", 3) || ieq(q, k, "infinity", 8)) {
            *v = neg ? -INFINITY : INFINITY;
            return 0;
        }
    }
    trim(&p, &n);
    /* the grammar: [sign] (digits [. digits] | . digits) [(e|E) [sign] digits] */
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    uint64_t m = 0;
    int digits = 0, ndig = 0; /* significant digits kept; all mantissa digits */
    int exp10 = 0;
    bool exact = true;       /* m holds every significant digit */
    for (; i < n && (unsigned)(p[i] - '0') <= 9; i++, ndig++) {
        if (m == 0 && p[i] == '0')
            continue;
        if (digits < 19) {
            m = m * 10 + (uint64_t)(p[i] - '0');
            digits++;
        } else {
            exact = false;
            exp10++;
        }
    }
    if (i < n && p[i] == '.') {
        i++;
        for (; i < n && (unsigned)(p[i] - '0') <= 9; i++, ndig++) {
            if (m == 0 && p[i] == '0') {
                exp10--;
                continue;
            }
            if (digits < 19) {
                m = m * 10 + (uint64_t)(p[i] - '0');
                digits++;
                exp10--;
            } else {
                exact = false;
            }
        }
    }
    if (ndig == 0)
        return -1;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            eneg = p[i++] == '-';
        if (i == n)
            return -1;
        long e = 0;
        for (; i < n && (unsigned)(p[i] - '0') <= 9; i++)
            if (e < 100000)
                e = e * 10 + (p[i] - '0');
        exp10 += (int)(eneg ? -e : e);
    }
    if (i != n)
        return -1;
    /* Clinger's fast path: m and 10^|e| are exact doubles, so one
     * multiplication or division is correctly rounded */
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (exact && m <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)m;
        d = exp10 < 0 ? d / pow10[-exp10] : d * pow10[exp10];
        *v = neg ? -d : d;
        return 0;
    }
    char small[128], *buf = small;
    if (n >= sizeof small && !(buf = malloc(n + 1)))
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *e;
    errno = 0;
    double d = strtod(buf, &e);
    int rc = (e == buf + n && !(errno == ERANGE && isinf(d))) ? 0 : -1;
    if (buf != small)
        free(buf);
    if (rc == 0)
        *v = d;
    return rc;
}

/* Whether p[0..n) is a float by kd_csv_parse_f64's grammar, without
 * computing it (pass 1 only needs the kind): only a value whose decimal
 * exponent could overflow is parsed, to tell 1e308 (a float) from 1e400
 * (text, as pandas). nint: digits before the point, if all were digits. */
static bool float_grammar(const char *p, size_t n)
{
    const char *q = p;
    size_t k = n;
    trim(&q, &k);
    size_t i = 0, ndig = 0;
    if (i < k && (q[i] == '+' || q[i] == '-'))
        i++;
    size_t lead = i;
    while (i < k && (unsigned)(q[i] - '0') <= 9)
        i++;
    size_t nint = i - lead;
    ndig = nint;
    if (i < k && q[i] == '.') {
        i++;
        while (i < k && (unsigned)(q[i] - '0') <= 9) {
            i++;
            ndig++;
        }
    }
    if (ndig == 0)
        return false;
    long e = 0;
    if (i < k && (q[i] == 'e' || q[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < k && (q[i] == '+' || q[i] == '-'))
            eneg = q[i++] == '-';
        size_t e0 = i;
        while (i < k && (unsigned)(q[i] - '0') <= 9) {
            if (e < 100000)
                e = e * 10 + (q[i] - '0');
            i++;
        }
        if (i == e0)
            return false;
        if (eneg)
            e = -e;
    }
    if (i != k)
        return false;
    if ((long)nint + e > 300) { /* may overflow: let the parser say */
        double d;
        return kd_csv_parse_f64(p, n, &d) == 0;
    }
    return true;
}

int kd_csv_classify(const char *p, size_t n)
{
    if (kd_csv_is_na(p, n))
        return KD_CSV_NA;
    bool b;
    if (kd_csv_parse_bool(p, n, &b) == 0)
        return KD_CSV_BOOL | KD_CSV_NOTINT;
    /* the common case first: plain digits (with a sign, spaces around) */
    const char *q = p;
    size_t k = n, i = 0;
    trim(&q, &k);
    if (i < k && (q[i] == '+' || q[i] == '-'))
        i++;
    size_t d0 = i;
    while (i < k && (unsigned)(q[i] - '0') <= 9)
        i++;
    if (i == k && i > d0) {
        int64_t v;
        if (i - d0 < 19 || parse_int(p, n, &v) == 0)
            return KD_CSV_INT | KD_CSV_FLOAT;
        return KD_CSV_BIGINT | KD_CSV_FLOAT | KD_CSV_NOTINT;
    }
    if (float_grammar(p, n))
        return KD_CSV_FLOAT | KD_CSV_NOTINT;
    double d; /* inf and infinity */
    if (n && (p[n - 1] | 0x20) == 'f' && kd_csv_parse_f64(p, n, &d) == 0)
        return KD_CSV_FLOAT | KD_CSV_NOTINT;
    if (n && (p[n - 1] | 0x20) == 'y' && kd_csv_parse_f64(p, n, &d) == 0)
        return KD_CSV_FLOAT | KD_CSV_NOTINT;
    return KD_CSV_TEXT | KD_CSV_NOTINT;
}

/* ---- date-times ---------------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n digits at p[*i] as a number, or -1 */
static int digits(const char *p, size_t len, size_t *i, int n)
{
    int v = 0;
    if (*i + (size_t)n > len)
        return -1;
    for (int k = 0; k < n; k++) {
        unsigned d = (unsigned)(p[*i + (size_t)k] - '0');
        if (d > 9)
            return -1;
        v = v * 10 + (int)d;
    }
    *i += (size_t)n;
    return v;
}

int kd_csv_parse_datetime(const char *p, size_t n, int64_t *v)
{
    trim(&p, &n);
    size_t i = 0;
    int y = digits(p, n, &i, 4);
    if (y < 0 || i >= n || p[i++] != '-')
        return -1;
    int mo = digits(p, n, &i, 2);
    if (mo < 1 || mo > 12 || i >= n || p[i++] != '-')
        return -1;
    int d = digits(p, n, &i, 2);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return -1;
    int h = 0, mi = 0, s = 0;
    bool frac = false;
    int64_t off = 0;
    if (i < n && (p[i] == ' ' || p[i] == 'T')) {
        i++;
        h = digits(p, n, &i, 2);
        if (h < 0 || h > 23 || i >= n || p[i++] != ':')
            return -1;
        mi = digits(p, n, &i, 2);
        if (mi < 0 || mi > 59)
            return -1;
        if (i < n && p[i] == ':') {
            i++;
            s = digits(p, n, &i, 2);
            if (s < 0 || s > 59)
                return -1;
            if (i < n && p[i] == '.') {
                i++;
                size_t f0 = i;
                while (i < n && (unsigned)(p[i] - '0') <= 9)
                    i++;
                if (i == f0)
                    return -1;
                for (size_t k = f0; k < i; k++)
                    frac |= p[k] != '0';
            }
        }
        if (i < n && p[i] == 'Z') {
            i++;
        } else if (i < n && (p[i] == '+' || p[i] == '-')) {
            int sign = p[i++] == '-' ? -1 : 1;
            int oh = digits(p, n, &i, 2);
            if (oh < 0 || oh > 23)
                return -1;
            if (i < n && p[i] == ':')
                i++;
            int om = digits(p, n, &i, 2);
            if (om < 0 || om > 59)
                return -1;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (i != n)
        return -1;
    (void)frac; /* seconds are floored: a fraction never changes them (t >= 0
                   or not, the whole seconds are those written) */
    *v = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off;
    return 0;
}
