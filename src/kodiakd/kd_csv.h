/* SPDX-License-Identifier: Apache-2.0 */
/* kd_csv.h — the CSV parser of kodiakd: pure C, no MPI, no symbol table.
 *
 * kd_cmd_csv.c (read_csv) and the dataset store's ingest call it on the
 * bytes one rank owns. It has three parts:
 *
 *   - splitting: kd_csv_quotes() counts quote characters of a byte range,
 *     and kd_csv_row_start() finds the first row that starts in a range
 *     once the quote parity at its first byte is known (an MPI_Exscan of
 *     the counts of the ranges before it);
 *   - tokenizing: kd_csv_next() returns the fields of one row at a time,
 *     as spans into the text (or into a per-row scratch area for quoted
 *     fields with "" escapes): no allocation per field;
 *   - values: kd_csv_classify() says what a field can be read as (pandas'
 *     inference), and the kd_csv_parse_* functions convert it.
 *
 * The dialect is pandas.read_csv's default one: ',' separates fields, '"'
 * quotes, "" inside quotes is one quote, a quote in the middle of an
 * unquoted field is an ordinary character, text after a closing quote is
 * appended to the field, a NUL byte ends a field's value (the rest up to
 * the separator is dropped, as pandas' C strings drop it); rows end at "\n", "\r\n" or a lone "\r"; a line
 * holding nothing but spaces and tabs is skipped. */
#ifndef KD_CSV_H
#define KD_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what a file can make the parser hold: a row (with its quoted
 * newlines) is at most KD_CSV_MAX_ROW bytes; a header at most
 * KD_CSV_MAX_COLS columns. */
#define KD_CSV_MAX_ROW (64u << 20)
#define KD_CSV_MAX_COLS 4096

/* One field of the current row. */
typedef struct {
    const char *p;  /* first byte (into the text or the reader's scratch) */
    uint32_t len;   /* bytes */
    uint8_t quoted; /* the field was (at least partly) inside quotes */
} kd_csv_field;

/* kd_csv_next()'s answers besides a field count */
enum {
    KD_CSV_END = -1,        /* no more rows */
    KD_CSV_ERR_QUOTE = -2,  /* the text ends inside a quoted field */
    KD_CSV_ERR_LONG = -3,   /* a row longer than KD_CSV_MAX_ROW */
    KD_CSV_ERR_NOMEM = -4,  /* the scratch area could not grow */
};

/* A reader of rows from one span of text. */
typedef struct {
    const char *pos, *end;  /* next byte to read, one past the last */
    int64_t line;           /* physical line (1-based) of pos: every row
                               end, quoted or not, starts a new one */
    int64_t row_line;       /* line on which the last row returned started */
    kd_csv_field *fields;   /* the last row's fields (the first maxfields) */
    int maxfields;          /* capacity of fields */
    char *scratch;          /* unescaped quoted fields of the current row */
    size_t scratch_cap;     /* bytes allocated at scratch */
    size_t scratch_len;     /* bytes used in the current row */
    const char *row_begin;  /* first byte of the last row returned (after the
                               blank lines skipped), or of the row cut short
                               by the end of the text */
    bool stray_quote;       /* a quote met inside an unquoted field */
} kd_csv_reader;

/* Set up a reader of text [p, p + n) whose first byte is on line `line`;
 * rows have at most maxfields fields stored (more are counted). Returns 0,
 * or -1 when out of memory. */
int kd_csv_init(kd_csv_reader *r, const char *p, size_t n, int64_t line, int maxfields);
void kd_csv_free(kd_csv_reader *r);
/* The next row: its number of fields (>= 1; only the first maxfields are in
 * r->fields), or one of KD_CSV_END, KD_CSV_ERR_*. */
int kd_csv_next(kd_csv_reader *r);
/* true: kd_csv_next finds the ends of unquoted fields 8 bytes at a time
 * only, not through 64-byte windows of SSE2 compares (the same answers:
 * the tests run both ways; KD_CSV_SIMD=0 in kodiakd's environment). */
extern bool kd_csv_scalar;

/* ---- rows of a file, read in chunks ------------------------------------------------ */

/* Rows of bytes [start, stop) of an open file (start is a row start), read
 * with pread into one buffer that is refilled as rows are consumed: memory
 * stays one chunk (more only for a row longer than half a chunk, up to
 * KD_CSV_MAX_ROW), and the file's bytes are copied from the page cache into
 * memory already touched instead of into fresh pages. */
typedef struct {
    int fd;                 /* the file (not owned) */
    int64_t next, stop;     /* next offset to read; end of the span */
    char *buf;              /* the chunk */
    size_t cap;             /* bytes allocated at buf */
    kd_csv_reader r;        /* over the bytes of buf */
    int err;                /* errno of a failed read (KD_CSV_ERR_IO) */
} kd_csv_chunks;

enum { KD_CSV_ERR_IO = -5 }; /* kd_csv_chunks_next: a read failed (err) */

/* 0, or -1 when out of memory. line: the physical line of start. */
int kd_csv_chunks_init(kd_csv_chunks *k, int fd, int64_t start, int64_t stop, int64_t line,
                       int maxfields, size_t chunk);
/* As kd_csv_next (k->r.fields, k->r.row_line, k->r.line), over the span. */
int kd_csv_chunks_next(kd_csv_chunks *k);
void kd_csv_chunks_free(kd_csv_chunks *k);

/* Quote characters in [p, p + n). */
uint64_t kd_csv_quotes(const char *p, size_t n);
/* Row ends ("\n", "\r\n" or a lone "\r") in [p, p + n), quoted or not. */
uint64_t kd_csv_lines(const char *p, size_t n);
/* The offset in [0, n] of the first row start at or after byte 0 of
 * p[0..n), given whether p[0] lies inside quotes (in_quotes) and the byte
 * just before p (prev, '\n' if p starts the text). n if no row starts
 * there. A row starts after a row end outside quotes. */
size_t kd_csv_row_start(const char *p, size_t n, bool in_quotes, char prev);

/* ---- values ---------------------------------------------------------------------- */

/* What a field can be read as (bits): pandas' default NA strings, its bool
 * words (True/TRUE/true, False/FALSE/false), an int64, a float64 */
enum {
    KD_CSV_NA = 1,
    KD_CSV_BOOL = 2,
    KD_CSV_INT = 4,      /* fits int64 */
    KD_CSV_BIGINT = 8,   /* integer digits past int64 (read as float64) */
    KD_CSV_FLOAT = 16,   /* a decimal or inf (also set for INT and BIGINT) */
    KD_CSV_TEXT = 32,    /* none of those */
    KD_CSV_NOTINT = 64,  /* a value that is not an int64 (FLOAT, BOOL or TEXT
                            without INT): set by kd_csv_classify, so that the
                            OR of a column's bits says whether all were ints */
};
int kd_csv_classify(const char *p, size_t n);
bool kd_csv_is_na(const char *p, size_t n);
/* 0 and the value, or -1 if the field is not one. Spaces around numbers are
 * allowed (as pandas allows them); bool words must be exact. */
int kd_csv_parse_i64(const char *p, size_t n, int64_t *v);
int kd_csv_parse_f64(const char *p, size_t n, double *v);
int kd_csv_parse_bool(const char *p, size_t n, bool *v);
/* ISO 8601 date-time text ("2017-01-01", "2017-01-01 00:32:05",
 * "2017-01-01T00:32:05.250", with "Z" or "+hh:mm") as seconds since
 * 1970-01-01 UTC (a naive time is taken as UTC; fractions are floored). */
int kd_csv_parse_datetime(const char *p, size_t n, int64_t *v);

#endif
