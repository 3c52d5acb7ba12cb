/* SPDX-License-Identifier: Apache-2.0 */
/* test_csv_parse.c — properties of kodiakd's CSV parser (src/kodiakd/kd_csv.c).
 *
 * The split rule read_csv's ranks rely on: for any text without a quote in
 * an unquoted field, cutting it at ANY byte x, taking the first row start at
 * or after x (kd_csv_row_start, given the quote parity of [0, x) and the
 * byte before x), and tokenizing the two parts separately gives exactly
 * the rows, fields and line numbers of tokenizing the whole. Checked on
 * thousands of random texts made of the awkward bytes (, " \n \r space a),
 * at every cut.
 *
 * Numbers: kd_csv_parse_f64 is the correctly rounded strtod on random
 * decimals (fast path and fallback); kd_csv_parse_datetime agrees with
 * timegm. Hostile input (random bytes, NULs, huge rows) only ever gives
 * rows or an error code.
 *
 * Built with -DKD_CSV_FUZZ and clang -fsanitize=fuzzer,address, the same
 * checks run as a libFuzzer target:
 *   clang -g -O1 -fsanitize=fuzzer,address -DKD_CSV_FUZZ -Isrc/kodiakd \
 *       tests/kodiakd/test_csv_parse.c src/kodiakd/kd_csv.c -o csv_fuzz -lm */
#define _GNU_SOURCE
#include "kd_csv.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef KD_CSV_FUZZ
#include <cmocka.h>
#else
#define assert_true(x) do { if (!(x)) abort(); } while (0)
#define assert_int_equal(a, b) assert_true((a) == (b))
#define assert_memory_equal(a, b, n) assert_true(memcmp(a, b, n) == 0)
#endif

/* One tokenized row, flattened: fields joined by \x01 (no field holds it
 * in the generated texts), with its line. */
typedef struct {
    char *text;
    size_t len;
    int64_t line;
    int nf;
} row_t;

/* Tokenize [p, p + n) starting on line `line`; rows into *out. Returns the
 * row count, or the negative kd_csv error. */
static int tokenize(const char *p, size_t n, int64_t line, row_t **out)
{
    kd_csv_reader r;
    assert_int_equal(kd_csv_init(&r, p, n, line, 64), 0);
    int count = 0, cap = 0, nf;
    *out = NULL;
    while ((nf = kd_csv_next(&r)) > 0) {
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            *out = realloc(*out, sizeof **out * (size_t)cap);
        }
        size_t len = 0;
        int keep = nf < 64 ? nf : 64;
        for (int i = 0; i < keep; i++)
            len += r.fields[i].len + 1;
        char *t = malloc(len + 1), *q = t;
        for (int i = 0; i < keep; i++) {
            memcpy(q, r.fields[i].p, r.fields[i].len);
            q += r.fields[i].len;
            *q++ = '\x01';
        }
        (*out)[count++] = (row_t){t, len, r.row_line, nf};
    }
    kd_csv_free(&r);
    if (nf < KD_CSV_END) {
        for (int i = 0; i < count; i++)
            free((*out)[i].text);
        free(*out);
        *out = NULL;
        return nf;
    }
    return count;
}

static void free_rows(row_t *v, int n)
{
    for (int i = 0; i < n && v; i++)
        free(v[i].text);
    free(v);
}

/* Whether the text has a quote that does not open a field (a "stray" one,
 * which the split rule does not cover and read_csv refuses with >1 rank). */
static bool has_stray_quote(const char *p, size_t n)
{
    kd_csv_reader r;
    kd_csv_init(&r, p, n, 1, 4);
    while (kd_csv_next(&r) > 0)
        ;
    bool s = r.stray_quote;
    kd_csv_free(&r);
    return s;
}

/* The split property for every cut of text p[0..n); false if the text is
 * outside the rule (a stray quote, or an open one at the end). */
static bool check_every_cut(const char *p, size_t n)
{
    if (has_stray_quote(p, n))
        return false;
    row_t *whole;
    int nw = tokenize(p, n, 1, &whole);
    if (nw < 0)
        return false; /* an open quote at the end: no rows to compare */
    for (size_t x = 0; x <= n; x++) {
        bool inq = kd_csv_quotes(p, x) & 1;
        char prev = x ? p[x - 1] : '\n';
        size_t s = x + kd_csv_row_start(p + x, n - x, inq, prev);
        row_t *a, *b;
        int na = tokenize(p, s, 1, &a);
        int64_t line_b = 1 + (int64_t)kd_csv_lines(p, s);
        int nb = tokenize(p + s, n - s, line_b, &b);
        assert_true(na >= 0 && nb >= 0);
        assert_int_equal(na + nb, nw);
        for (int i = 0; i < nw; i++) {
            row_t *r = i < na ? &a[i] : &b[i - na];
            assert_int_equal(r->nf, whole[i].nf);
            assert_int_equal(r->line, whole[i].line);
            assert_int_equal(r->len, whole[i].len);
            assert_memory_equal(r->text, whole[i].text, r->len);
        }
        free_rows(a, na);
        free_rows(b, nb);
    }
    free_rows(whole, nw);
    return true;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A random text of quoted and unquoted fields, with row ends of every kind
 * and blank lines. */
static size_t random_csv(char *out, size_t cap)
{
    static const char *ends[] = {"\n", "\r\n", "\r", "\n\n", "\n  \n"};
    static const char inside[] = "a,\n\r \"";
    size_t n = 0;
    int rows = 1 + (int)(rnd() % 6);
    for (int r = 0; r < rows && n + 64 < cap; r++) {
        int fields = 1 + (int)(rnd() % 4);
        for (int f = 0; f < fields && n + 32 < cap; f++) {
            if (f)
                out[n++] = ',';
            if (rnd() % 3 == 0) { /* quoted: anything inside, "" for a quote */
                out[n++] = '"';
                int k = (int)(rnd() % 6);
                for (int i = 0; i < k; i++) {
                    char c = inside[rnd() % (sizeof inside - 1)];
                    out[n++] = c;
                    if (c == '"')
                        out[n++] = '"';
                }
                out[n++] = '"';
            } else {
                int k = (int)(rnd() % 4);
                for (int i = 0; i < k; i++)
                    out[n++] = "ab1 "[rnd() % 4];
            }
        }
        if (r + 1 < rows || rnd() % 2) {
            const char *e = ends[rnd() % 5];
            memcpy(out + n, e, strlen(e));
            n += strlen(e);
        }
    }
    return n;
}

/* Reading a file in chunks gives the rows, fields and lines of reading it
 * whole, whatever the chunk size (rows cut by the chunk's end are read
 * again after a refill; a row longer than half a chunk grows it). */
static bool chunks_match_whole(const char *p, size_t n, size_t chunk)
{
    row_t *whole;
    int nw = tokenize(p, n, 1, &whole);
    FILE *tmp = tmpfile();
    fwrite(p, 1, n, tmp);
    fflush(tmp);
    kd_csv_chunks k;
    assert_int_equal(kd_csv_chunks_init(&k, fileno(tmp), 0, (int64_t)n, 1, 64, chunk), 0);
    int i = 0, nf;
    bool same = true;
    while ((nf = kd_csv_chunks_next(&k)) > 0) {
        if (nw < 0)
            continue; /* the whole text ends in an error: compare that only */
        size_t len = 0;
        int keep = nf < 64 ? nf : 64;
        for (int j = 0; j < keep; j++)
            len += k.r.fields[j].len + 1;
        if (i >= nw || nf != whole[i].nf || len != whole[i].len ||
            k.r.row_line != whole[i].line) {
            same = false;
            break;
        }
        char *q = whole[i].text;
        for (int j = 0; j < keep; j++) {
            same &= memcmp(q, k.r.fields[j].p, k.r.fields[j].len) == 0;
            q += k.r.fields[j].len + 1;
        }
        i++;
    }
    if (nw >= 0)
        same &= nf == KD_CSV_END && i == nw;
    else
        same &= nf == nw; /* the same error */
    kd_csv_chunks_free(&k);
    fclose(tmp);
    free_rows(whole, nw > 0 ? nw : 0);
    return same;
}

#ifndef KD_CSV_FUZZ

static void chunked_reading_matches_whole(void **state)
{
    (void)state;
    char buf[2048];
    for (int t = 0; t < 1500; t++) {
        size_t n = random_csv(buf, sizeof buf / 2);
        if (t % 10 == 0) { /* a long quoted row: the chunk must grow */
            n += (size_t)sprintf(buf + n, "\"%0900d\n\",x\r\n", t);
        }
        for (size_t chunk = 16; chunk <= 80; chunk += 7)
            assert_true(chunks_match_whole(buf, n, chunk));
    }
}

static void split_rule_holds_at_every_cut(void **state)
{
    (void)state;
    char buf[512];
    int checked = 0, quoted_newlines = 0;
    for (int t = 0; t < 4000; t++) {
        size_t n = random_csv(buf, sizeof buf);
        if (check_every_cut(buf, n)) {
            checked++;
            quoted_newlines += kd_csv_quotes(buf, n) > 0 && memchr(buf, '\n', n) != NULL;
        }
    }
    assert_true(checked > 3500);       /* the property was tested, not skipped */
    assert_true(quoted_newlines > 1000);
    /* the hand-made cases: quoted newlines and CRLF on the cut */
    const char *cases[] = {"a,\"x\ny\"\r\nb,\"\"\"\"\n", "\"\r\n\",1\r\n2,3", "\n\n\"a\nb\"\n",
                           "x\r\r\n\"\r\"\r", ""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_true(check_every_cut(cases[i], strlen(cases[i])));
}

static void floats_are_correctly_rounded(void **state)
{
    (void)state;
    char txt[64];
    for (int t = 0; t < 200000; t++) {
        int digits = 1 + (int)(rnd() % 20), point = (int)(rnd() % (digits + 1));
        size_t n = 0;
        if (rnd() % 2)
            txt[n++] = '-';
        for (int i = 0; i < digits; i++) {
            if (i == point && rnd() % 2)
                txt[n++] = '.';
            txt[n++] = (char)('0' + rnd() % 10);
        }
        if (rnd() % 2)
            n += (size_t)sprintf(txt + n, "e%d", (int)(rnd() % 700) - 350);
        txt[n] = '\0';
        double want = strtod(txt, NULL), got;
        if (isinf(want))
            continue; /* overflow: not a float for pandas (text) */
        assert_int_equal(kd_csv_parse_f64(txt, n, &got), 0);
        assert_memory_equal(&got, &want, sizeof got);
    }
    double v;
    assert_int_equal(kd_csv_parse_f64("1e400", 5, &v), -1);
    assert_int_equal(kd_csv_parse_f64("0x10", 4, &v), -1);
    assert_int_equal(kd_csv_parse_f64("-Infinity", 9, &v), 0);
    assert_true(isinf(v) && v < 0);
    assert_int_equal(kd_csv_parse_f64(" INF", 4, &v), -1); /* as pandas: no spaces */
    assert_int_equal(kd_csv_parse_f64(" 2.5 ", 5, &v), 0);
    assert_true(v == 2.5);
    assert_int_equal(kd_csv_parse_f64("nan", 3, &v), -1); /* NA, not a number */
    assert_int_equal(kd_csv_parse_f64(".", 1, &v), -1);
    assert_int_equal(kd_csv_parse_f64("1e", 2, &v), -1);
}

/* kd_csv_parse_f64's fast path (Clinger's: at most 19 significant digits
 * that fit 2^53, |power of ten| <= 22, one exact multiply or divide) gives
 * strtod's correctly rounded double, bit for bit, on the edges of that path
 * and on many random decimals made to fall on either side of it; what it
 * refuses, strtod refuses too (or overflows: text for pandas). */
static void float_fast_path_is_strtod(void **state)
{
    (void)state;
    static const char *edges[] = {
        "0", "-0", "-0.0", "+0", "0.0", ".5", "5.", "-.5", "+5.", "1e308", "-1e308",
        "1.7976931348623157e308", "1.7976931348623158e308", "4.9e-324", "5e-324",
        "2.4703282292062328e-324", "2.4703282292062327e-324", "2.2250738585072011e-308",
        "2.2250738585072014e-308", "1e-400", "9007199254740992", "9007199254740993",
        "9007199254740994", "9007199254740995", "900719925474099.3", "1e22", "1e23",
        "1e-22", "1e-23", "9007199254740991e22", "9007199254740991e-22", "0.1", "0.3",
        "123456789012345678e-5", "1234567890123456789", "12345678901234567890",
        "99999999999999999999", "000000000000000000000001.5", "0.0000000000000000000000001",
        "1E+5", "1e+0", "1e-0", "1.e5", ".1e1", "3.141592653589793238462643383279",
        "7.2057594037927933e16", "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124", "4503599627370496.5",
        "4503599627370497.5", "1e00000000000000000000000000001", "0e999999", "-0e-5",
        " 2.5", "2.5 ", "\t1.25\t",
    };
    char txt[128];
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        size_t n = strlen(edges[i]);
        char *end;
        double want = strtod(edges[i], &end), got;
        int rc = kd_csv_parse_f64(edges[i], n, &got);
        bool whole = *end == '\0' || strspn(end, " \t") == strlen(end);
        if (isinf(want) || !whole) {
            assert_int_equal(rc, -1); /* overflow, or not all of it a number */
            continue;
        }
        assert_int_equal(rc, 0);
        assert_memory_equal(&got, &want, sizeof got); /* the sign of -0 too */
    }
    /* random decimals around the fast path's bounds: 14 to 20 significant
     * digits (2^53 has 16), exponents from -26 to 26, leading and trailing
     * zeros, a point anywhere */
    int fast = 0;
    for (int t = 0; t < 400000; t++) {
        size_t n = 0;
        int digits = 14 + (int)(rnd() % 7), point = (int)(rnd() % (digits + 1));
        if (rnd() % 2)
            txt[n++] = '-';
        for (int z = (int)(rnd() % 4); z > 0; z--)
            txt[n++] = '0';
        for (int i = 0; i < digits; i++) {
            if (i == point)
                txt[n++] = '.';
            txt[n++] = (char)((i == 0 ? '1' : '0') + rnd() % (i == 0 ? 9 : 10));
        }
        if (rnd() % 4 == 0)
            for (int z = (int)(rnd() % 4); z > 0; z--)
                txt[n++] = '0';
        int e = (int)(rnd() % 53) - 26;
        n += (size_t)sprintf(txt + n, "e%d", e);
        double want = strtod(txt, NULL), got;
        assert_int_equal(kd_csv_parse_f64(txt, n, &got), 0);
        assert_memory_equal(&got, &want, sizeof got);
        fast += digits <= 15 && e - (digits - point) >= -22 && e - (digits - point) <= 22;
    }
    assert_true(fast > 50000); /* the fast path was exercised, not only strtod */
    /* short decimals like the taxi data's, all on the fast path */
    for (int t = 0; t < 200000; t++) {
        int n = sprintf(txt, "%s%u.%0*u", rnd() % 2 ? "-" : "", (unsigned)(rnd() % 100000),
                        1 + (int)(rnd() % 6), (unsigned)(rnd() % 1000000));
        double want = strtod(txt, NULL), got;
        assert_int_equal(kd_csv_parse_f64(txt, (size_t)n, &got), 0);
        assert_memory_equal(&got, &want, sizeof got);
    }
}

/* kd_csv_parse_i64 is strtoll without its clamping: every int64 (the edges
 * too) reads exactly, one past either edge is not an int64. */
static void ints_agree_with_strtoll(void **state)
{
    (void)state;
    static const char *edges[] = {
        "0", "-0", "+0", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "-9223372036854775809", "18446744073709551615",
        "18446744073709551616", "99999999999999999999999", "00000000000000000000000042",
        "-00000000000000000000009223372036854775808", " 12", "12 ", "+", "-", "", "1.0",
        "1e3", "0x10", "1_000", "--1",
    };
    char txt[64];
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        size_t n = strlen(edges[i]);
        char *end;
        errno = 0;
        long long want = strtoll(edges[i], &end, 10);
        bool ok = n && end != edges[i] && errno == 0 && strspn(end, " ") == strlen(end) &&
                  strchr("0123456789", end[-1]);
        int64_t got;
        assert_int_equal(kd_csv_parse_i64(edges[i], n, &got), ok ? 0 : -1);
        if (ok)
            assert_true(got == want);
    }
    for (int t = 0; t < 200000; t++) {
        int64_t v = (int64_t)(((uint64_t)rnd() << 40) ^ ((uint64_t)rnd() << 20) ^ rnd());
        v >>= rnd() % 63;
        int n = sprintf(txt, "%lld", (long long)v), got_rc;
        int64_t got;
        got_rc = kd_csv_parse_i64(txt, (size_t)n, &got);
        assert_int_equal(got_rc, 0);
        assert_true(got == v);
    }
}

static void datetimes_agree_with_timegm(void **state)
{
    (void)state;
    for (int t = 0; t < 100000; t++) {
        struct tm tm = {0};
        tm.tm_year = (int)(rnd() % 400) - 100; /* 1800 .. 2199 */
        tm.tm_mon = (int)(rnd() % 12);
        tm.tm_mday = 1 + (int)(rnd() % 28);
        tm.tm_hour = (int)(rnd() % 24);
        tm.tm_min = (int)(rnd() % 60);
        tm.tm_sec = (int)(rnd() % 60);
        char txt[64];
        int n = sprintf(txt, "%04d-%02d-%02d%c%02d:%02d:%02d", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, rnd() % 2 ? ' ' : 'T', tm.tm_hour,
                        tm.tm_min, tm.tm_sec);
        int64_t got;
        assert_int_equal(kd_csv_parse_datetime(txt, (size_t)n, &got), 0);
        assert_int_equal(got, (int64_t)timegm(&tm));
    }
    int64_t v;
    assert_int_equal(kd_csv_parse_datetime("2017-02-29", 10, &v), -1);
    assert_int_equal(kd_csv_parse_datetime("2016-02-29", 10, &v), 0);
    assert_int_equal(kd_csv_parse_datetime("2017-01-01 00:32:05.9", 21, &v), 0);
    assert_int_equal(v, 1483230725);
    assert_int_equal(kd_csv_parse_datetime("2017-01-01T01:00:00+01:00", 25, &v), 0);
    assert_int_equal(v, 1483228800);
    assert_int_equal(kd_csv_parse_datetime("yesterday", 9, &v), -1);
}

static void classification_is_pandas(void **state)
{
    (void)state;
    struct { const char *s; int want; } cases[] = {
        {"", KD_CSV_NA}, {"NA", KD_CSV_NA}, {"nan", KD_CSV_NA}, {"#N/A N/A", KD_CSV_NA},
        {"True", KD_CSV_BOOL | KD_CSV_NOTINT}, {"TRUE", KD_CSV_BOOL | KD_CSV_NOTINT},
        {" true", KD_CSV_TEXT | KD_CSV_NOTINT}, {"-12", KD_CSV_INT | KD_CSV_FLOAT},
        {" 7 ", KD_CSV_INT | KD_CSV_FLOAT}, {"+3", KD_CSV_INT | KD_CSV_FLOAT},
        {"9223372036854775808", KD_CSV_BIGINT | KD_CSV_FLOAT | KD_CSV_NOTINT},
        {"1.5", KD_CSV_FLOAT | KD_CSV_NOTINT}, {"1d5", KD_CSV_TEXT | KD_CSV_NOTINT},
        {"NAN", KD_CSV_TEXT | KD_CSV_NOTINT}, {"inf", KD_CSV_FLOAT | KD_CSV_NOTINT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(kd_csv_classify(cases[i].s, strlen(cases[i].s)), cases[i].want);
}

/* kd_csv_classify's kinds agree with what the parsers accept, on random
 * strings of number-like bytes. */
static void classification_agrees_with_parsers(void **state)
{
    (void)state;
    static const char alpha[] = "0123456789.eE+- infINFty";
    char txt[40];
    for (int t = 0; t < 300000; t++) {
        size_t n = rnd() % 12;
        for (size_t i = 0; i < n; i++)
            txt[i] = rnd() % 3 ? alpha[rnd() % 10] : alpha[rnd() % (sizeof alpha - 1)];
        if (rnd() % 50 == 0)
            n = (size_t)sprintf(txt, "%de%d", (int)(rnd() % 100), (int)(rnd() % 40) + 290);
        int k = kd_csv_classify(txt, n);
        double d;
        int64_t v;
        bool b;
        if (k == KD_CSV_NA || kd_csv_parse_bool(txt, n, &b) == 0)
            continue;
        assert_int_equal(!!(k & KD_CSV_FLOAT), kd_csv_parse_f64(txt, n, &d) == 0);
        assert_int_equal(!!(k & KD_CSV_INT), kd_csv_parse_i64(txt, n, &v) == 0);
        assert_int_equal(!!(k & KD_CSV_TEXT), !(k & KD_CSV_FLOAT));
    }
}

/* kd_csv_next finds the ends of unquoted fields through 64-byte windows of
 * SSE2 compares (kd_csv.c), or 8 bytes at a time when kd_csv_scalar is
 * set: the two ways give the same rows, fields (bytes, lengths, quoting),
 * lines, stray-quote flag and errors, on texts of every kind: the random
 * CSV above, rows of long plain fields (windows cut at every offset, the
 * last bytes shorter than a window), and hostile bytes with NULs and
 * stray quotes. */
static void same_both_ways(const char *p, size_t n)
{
    kd_csv_reader a, b;
    assert_int_equal(kd_csv_init(&a, p, n, 1, 64), 0);
    assert_int_equal(kd_csv_init(&b, p, n, 1, 64), 0);
    for (;;) {
        kd_csv_scalar = false;
        int na = kd_csv_next(&a);
        kd_csv_scalar = true;
        int nb = kd_csv_next(&b);
        kd_csv_scalar = false;
        assert_int_equal(na, nb);
        if (na <= 0)
            break;
        assert_int_equal(a.row_line, b.row_line);
        assert_int_equal(a.pos - p, b.pos - p);
        for (int i = 0; i < (na < 64 ? na : 64); i++) {
            assert_int_equal(a.fields[i].len, b.fields[i].len);
            assert_int_equal(a.fields[i].quoted, b.fields[i].quoted);
            assert_memory_equal(a.fields[i].p, b.fields[i].p, a.fields[i].len);
        }
    }
    assert_int_equal(a.stray_quote, b.stray_quote);
    assert_int_equal(a.line, b.line);
    kd_csv_free(&a);
    kd_csv_free(&b);
}

static void windows_find_what_the_scalar_way_finds(void **state)
{
    (void)state;
    size_t cap = 1 << 14;
    char *buf = malloc(cap);
    int rows = 0;
    for (int t = 0; t < 3000; t++) {
        size_t n = 0;
        switch (t % 3) {
        case 0:
            n = random_csv(buf, 2048);
            break;
        case 1: /* long plain fields, a special byte now and then */
            while (n + 400 < cap && rnd() % 40) {
                size_t k = rnd() % 300;
                for (size_t i = 0; i < k; i++)
                    buf[n++] = rnd() % 97 ? "abc 1.5:-"[rnd() % 9] : "\",\n\r"[rnd() % 4];
                buf[n++] = rnd() % 5 ? ',' : rnd() % 2 ? '\n' : '\r';
                rows++;
            }
            break;
        default: /* hostile bytes */
            n = rnd() % 4096;
            for (size_t i = 0; i < n; i++)
                buf[i] = rnd() % 4 ? "\",\n\r\0a\xff"[rnd() % 7] : (char)rnd();
        }
        same_both_ways(buf, n);
        for (size_t cut = 1; cut < 70 && cut < n; cut += 13) /* other alignments and ends */
            same_both_ways(buf + cut, n - cut);
    }
    assert_true(rows > 10000); /* the long fields were made */
    free(buf);
}

static void hostile_bytes_give_rows_or_errors(void **state)
{
    (void)state;
    size_t n = 1 << 16;
    char *buf = malloc(n);
    for (int t = 0; t < 200; t++) {
        size_t len = rnd() % n;
        for (size_t i = 0; i < len; i++)
            buf[i] = rnd() % 4 ? "\",\n\r\0a\xff"[rnd() % 7] : (char)rnd();
        kd_csv_reader r;
        kd_csv_init(&r, buf, len, 1, 8);
        int nf, rows = 0;
        while ((nf = kd_csv_next(&r)) > 0)
            rows++;
        assert_true(nf == KD_CSV_END || nf == KD_CSV_ERR_QUOTE);
        assert_true((size_t)rows <= len);
        kd_csv_free(&r);
    }
    free(buf);
    /* a row longer than the bound is an error, not a buffer without end */
    size_t big = (size_t)KD_CSV_MAX_ROW + 10;
    char *huge = malloc(big);
    memset(huge, 'x', big);
    huge[0] = '"';
    huge[big - 2] = '"';
    huge[big - 1] = '\n';
    kd_csv_reader r;
    kd_csv_init(&r, huge, big, 1, 8);
    assert_int_equal(kd_csv_next(&r), KD_CSV_ERR_LONG);
    kd_csv_free(&r);
    free(huge);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_rule_holds_at_every_cut),
        cmocka_unit_test(chunked_reading_matches_whole),
        cmocka_unit_test(floats_are_correctly_rounded),
        cmocka_unit_test(float_fast_path_is_strtod),
        cmocka_unit_test(ints_agree_with_strtoll),
        cmocka_unit_test(datetimes_agree_with_timegm),
        cmocka_unit_test(classification_is_pandas),
        cmocka_unit_test(classification_agrees_with_parsers),
        cmocka_unit_test(hostile_bytes_give_rows_or_errors),
        cmocka_unit_test(windows_find_what_the_scalar_way_finds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* libFuzzer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *copy = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    memcpy(copy, data, size);
    check_every_cut(copy, size);
    assert_true(chunks_match_whole(copy, size, 16 + size % 50));
    for (size_t i = 0; i < size && i < 64; i++) {
        double d;
        int64_t v;
        kd_csv_classify(copy + i, size - i);
        kd_csv_parse_f64(copy + i, size - i, &d);
        kd_csv_parse_datetime(copy + i, size - i, &v);
    }
    free(copy);
    return 0;
}

#endif
