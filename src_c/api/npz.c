/* .npz archives from untrusted sources: the zip container (npz.h) and the
 * .npy members in it. Nothing is allocated or read from a size the file
 * declares before that size has been checked against the bytes the source
 * holds. */
#include "npz.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fastlstm.h"
#include "fastlstm_model.h"

int fl_fail(int status, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

int fl_src_read(const fl_src *s, uint64_t off, void *dst, size_t n)
{
    if (off > s->size || n > s->size - off) return -1;
    if (n == 0) return 0;
    if (s->mem) {
        memcpy(dst, s->mem + off, n);
        return 0;
    }
    if (off > (uint64_t)LONG_MAX || fseek(s->fp, (long)off, SEEK_SET) != 0) return -1;
    return fread(dst, 1, n, s->fp) == n ? 0 : -1;
}

/* little-endian fields */
static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_END64_LOC 0x07064b50u
#define END_BYTES 22
#define CENTRAL_BYTES 46
#define LOCAL_BYTES 30
#define MAX_CD_BYTES (1u << 16)              /* 16 members with short names fit easily */
#define MAX_TOTAL_BYTES ((uint64_t)1 << 32)  /* io.py's MAX_TOTAL_BYTES */

#define BAD_ZIP "not a fastlstm model file, or a truncated or corrupt one (not a valid .npz archive: "

/* a member name as save() writes it: [a-z][a-z0-9_]{0,31} + ".npy" */
static int good_name(const unsigned char *p, size_t n, char *stem)
{
    if (n < 5 || n > FL_NPZ_NAME_MAX + 4 || memcmp(p + n - 4, ".npy", 4) != 0) return 0;
    n -= 4;
    if (!(p[0] >= 'a' && p[0] <= 'z')) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return 0;
        stem[i] = (char)c;
    }
    stem[n] = 0;
    return 1;
}

/* Find the end-of-central-directory record: at the very end of the file, or
 * followed by exactly its comment. *pos is its offset; rec its 22 bytes. */
static int find_end(const fl_src *s, uint64_t *pos, unsigned char *rec)
{
    if (s->size < END_BYTES) return -1;
    if (fl_src_read(s, s->size - END_BYTES, rec, END_BYTES) == 0 && le32(rec) == SIG_END
        && le16(rec + 20) == 0) {
        *pos = s->size - END_BYTES;
        return 0;
    }
    uint64_t span = s->size < END_BYTES + 0xffff ? s->size : END_BYTES + 0xffff;
    unsigned char *tail = malloc((size_t)span);
    if (!tail) return -2;
    int found = -1;
    if (fl_src_read(s, s->size - span, tail, (size_t)span) == 0) {
        for (uint64_t i = span - END_BYTES + 1; i-- > 0;) {
            if (le32(tail + i) == SIG_END && i + END_BYTES + le16(tail + i + 20) == span) {
                memcpy(rec, tail + i, END_BYTES);
                *pos = s->size - span + i;
                found = 0;
                break;
            }
        }
    }
    free(tail);
    return found;
}

int fl_zip_open(const fl_src *s, fl_zip *z, char *err, size_t errlen)
{
    unsigned char rec[END_BYTES], head[8];
    uint64_t end_pos;
    memset(z, 0, sizeof(*z));
    if (fl_src_read(s, 0, head, s->size < 8 ? (size_t)s->size : 8) == 0) {
        if (s->size >= 1 && head[0] == 0x80)   /* pickle protocol >= 2 starts with PROTO */
            return fl_fail(FL_ERR_FORMAT, err, errlen,
                           "model file is a pickle, not a fastlstm .npz model file; refusing "
                           "to load it");
        if (s->size >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
            return fl_fail(FL_ERR_FORMAT, err, errlen,
                           "not a fastlstm model file: a single .npy array, not an .npz archive");
    }
    int st = find_end(s, &end_pos, rec);
    if (st == -2) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory reading the archive");
    if (st != 0)
        return fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "no end of central directory)");
    uint64_t entries = le16(rec + 10), cd_size = le32(rec + 12), cd_off = le32(rec + 16);
    uint64_t cd_end = end_pos;   /* the central directory must end where the end record starts */
    if (le16(rec + 4) != 0 || le16(rec + 6) != 0 || le16(rec + 8) != entries)
        return fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "multi-disk archive)");
    if (entries == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        /* zip64: a locator just before the end record points to the zip64 end record */
        unsigned char loc[20], r64[56];
        if (end_pos < 20 || fl_src_read(s, end_pos - 20, loc, 20) != 0
            || le32(loc) != SIG_END64_LOC || le32(loc + 4) != 0 || le32(loc + 16) != 1)
            return fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "bad zip64 locator)");
        uint64_t r64_pos = le64(loc + 8);
        if (r64_pos > end_pos - 20 || end_pos - 20 - r64_pos < 56
            || fl_src_read(s, r64_pos, r64, 56) != 0 || le32(r64) != SIG_END64
            || le32(r64 + 16) != 0 || le32(r64 + 20) != 0 || le64(r64 + 24) != le64(r64 + 32))
            return fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "bad zip64 end record)");
        entries = le64(r64 + 32);
        cd_size = le64(r64 + 40);
        cd_off = le64(r64 + 48);
        cd_end = r64_pos;
    }
    if (entries > FL_NPZ_MAX_MEMBERS)
        return fl_fail(FL_ERR_FORMAT, err, errlen,
                       "model file has %llu members; at most %d allowed",
                       (unsigned long long)entries, FL_NPZ_MAX_MEMBERS);
    if (cd_off > cd_end || cd_size != cd_end - cd_off)
        return fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "central directory out of place)");
    if (cd_size > MAX_CD_BYTES)
        return fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "central directory too large)");
    unsigned char *cd = malloc(cd_size ? (size_t)cd_size : 1);
    if (!cd) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory reading the archive");
    st = FL_OK;
    if (fl_src_read(s, cd_off, cd, (size_t)cd_size) != 0) {
        st = fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "cannot read the central directory)");
        goto done;
    }
    z->cd_offset = cd_off;
    uint64_t p = 0, total = 0;
    for (uint64_t e = 0; e < entries; e++) {
        if (cd_size - p < CENTRAL_BYTES || le32(cd + p) != SIG_CENTRAL) {
            st = fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "bad central directory entry)");
            goto done;
        }
        const unsigned char *c = cd + p;
        uint32_t flags = le16(c + 8), method = le16(c + 10);
        uint64_t csize = le32(c + 20), usize = le32(c + 24), off = le32(c + 42);
        uint64_t nlen = le16(c + 28), xlen = le16(c + 30), clen = le16(c + 32);
        if (cd_size - p - CENTRAL_BYTES < nlen + xlen + clen) {
            st = fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "bad central directory entry)");
            goto done;
        }
        const unsigned char *name = c + CENTRAL_BYTES, *x = name + nlen, *xend = x + xlen;
        /* zip64 sizes and offset, where the 32-bit fields say 0xffffffff */
        while (xend - x >= 4) {
            uint32_t id = le16(x), len = le16(x + 2);
            if ((uint64_t)(xend - x - 4) < len) break;
            if (id == 1) {
                const unsigned char *q = x + 4, *qend = q + len;
                if (usize == 0xffffffffu && qend - q >= 8) { usize = le64(q); q += 8; }
                if (csize == 0xffffffffu && qend - q >= 8) { csize = le64(q); q += 8; }
                if (off == 0xffffffffu && qend - q >= 8) { off = le64(q); q += 8; }
            }
            x += 4 + len;
        }
        fl_zip_member *m = &z->m[z->n];
        if (!good_name(name, (size_t)nlen, m->name)) {
            char shown[48];
            size_t k, n = nlen < 40 ? (size_t)nlen : 40;
            for (k = 0; k < n; k++) shown[k] = name[k] >= 32 && name[k] < 127 ? (char)name[k] : '?';
            shown[k] = 0;
            st = fl_fail(FL_ERR_FORMAT, err, errlen, "unexpected member '%s%s' in model file",
                         shown, nlen > 40 ? "..." : "");
            goto done;
        }
        for (int j = 0; j < z->n; j++)
            if (strcmp(z->m[j].name, m->name) == 0) {
                st = fl_fail(FL_ERR_FORMAT, err, errlen, "model file has duplicate member names");
                goto done;
            }
        if (flags & (1u | 1u << 5 | 1u << 6 | 1u << 13)) {
            st = fl_fail(FL_ERR_FORMAT, err, errlen,
                         "member '%s.npy' is encrypted or patched", m->name);
            goto done;
        }
        if (method == 8) {
            st = fl_fail(FL_ERR_UNSUPPORTED, err, errlen,
                         "member '%s.npy' is deflated (a numpy.savez_compressed archive?): this "
                         "reader takes only STORED members, as fastlstm's save() writes them; "
                         "load the model in Python and save() it again", m->name);
            goto done;
        }
        if (method != 0) {
            st = fl_fail(FL_ERR_FORMAT, err, errlen,
                         "member '%s.npy' uses an unsupported compression (method %u)",
                         m->name, (unsigned)method);
            goto done;
        }
        if (csize != usize || csize > s->size) {
            st = fl_fail(FL_ERR_FORMAT, err, errlen,
                         "member '%s.npy' declares %llu bytes, more than its %llu bytes in the "
                         "file can hold", m->name, (unsigned long long)usize,
                         (unsigned long long)csize);
            goto done;
        }
        if (off >= cd_off) {
            st = fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "member '%s.npy' out of place)",
                         m->name);
            goto done;
        }
        m->method = (int)method;
        m->crc = le32(c + 16);
        m->size = usize;
        m->local_offset = off;
        total += usize;
        z->n++;
        p += CENTRAL_BYTES + nlen + xlen + clen;
    }
    if (total > MAX_TOTAL_BYTES) st = fl_fail(FL_ERR_FORMAT, err, errlen, "model file is too large");
done:
    free(cd);
    return st;
}

int fl_zip_find(const fl_zip *z, const char *name)
{
    for (int k = 0; k < z->n; k++)
        if (strcmp(z->m[k].name, name) == 0) return k;
    return -1;
}

/* ---------------------------------------------------------------- .npy headers */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* a quoted string without escapes: '...' or "..." -> [*s, *s + *n) */
static int quoted(cursor *c, const char **s, size_t *n)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || (unsigned char)*c->p < 32 || (unsigned char)*c->p >= 127) return 0;
        c->p++;
    }
    if (c->p >= c->end) return 0;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return 1;
}

static int word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    const char *after = c->p + n;
    if (after < c->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z')
                           || (*after >= '0' && *after <= '9') || *after == '_'))
        return 0;
    c->p = after;
    return 1;
}

/* a non-negative decimal int literal below 2^62 */
static int uint_lit(cursor *c, uint64_t *v)
{
    skip_ws(c);
    const char *s = c->p;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (x > ((uint64_t)1 << 62) / 10) return 0;
        x = x * 10 + (uint64_t)(*c->p - '0');
        c->p++;
    }
    if (c->p == s || (c->p - s > 1 && *s == '0') || x >= (uint64_t)1 << 62) return 0;
    *v = x;
    return 1;
}

static int parse_descr(const char *s, size_t n, fl_npy *npy)
{
    static const struct { const char *d; int type; uint64_t size; } table[] = {
        {"<f4", FL_NPY_F4, 4}, {"<f8", FL_NPY_F8, 8}, {"|u1", FL_NPY_U1, 1},
        {"<i8", FL_NPY_I8, 8}, {"<i4", FL_NPY_I4, 4}, {"|b1", FL_NPY_B1, 1},
    };
    for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++)
        if (n == 3 && memcmp(s, table[k].d, 3) == 0) {
            npy->type = table[k].type;
            npy->itemsize = table[k].size;
            return 1;
        }
    /* '<U1' .. '<U9999': fixed-width UTF-32 strings (class labels) */
    if (n >= 3 && n <= 6 && s[0] == '<' && s[1] == 'U' && s[2] >= '1' && s[2] <= '9') {
        int len = 0;
        for (size_t k = 2; k < n; k++) {
            if (s[k] < '0' || s[k] > '9') return 0;
            len = len * 10 + (s[k] - '0');
        }
        npy->type = FL_NPY_U;
        npy->str_len = len;
        npy->itemsize = 4 * (uint64_t)len;
        return 1;
    }
    return 0;
}

/* {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } and padding */
static int parse_header_dict(const char *text, size_t len, fl_npy *npy, const char **why)
{
    cursor c = { text, text + len };
    int have_descr = 0, have_order = 0, have_shape = 0;
    *why = "not a dict of descr, fortran_order and shape";
    if (!eat(&c, '{')) return 0;
    for (;;) {
        const char *key;
        size_t klen;
        if (eat(&c, '}')) break;
        if (!quoted(&c, &key, &klen) || !eat(&c, ':')) return 0;
        if (klen == 5 && memcmp(key, "descr", 5) == 0 && !have_descr) {
            const char *d;
            size_t dn;
            if (!quoted(&c, &d, &dn)) return 0;
            if (!parse_descr(d, dn, npy)) {
                *why = "an element type model files may not hold (allowed: <f4, <f8, |u1, <i8, "
                       "<i4, |b1, <U1..<U9999)";
                return 0;
            }
            have_descr = 1;
        } else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0 && !have_order) {
            if (word(&c, "True")) {
                *why = "a Fortran-ordered array (save() writes C order)";
                return 0;
            }
            if (!word(&c, "False")) return 0;
            have_order = 1;
        } else if (klen == 5 && memcmp(key, "shape", 5) == 0 && !have_shape) {
            if (!eat(&c, '(')) return 0;
            npy->ndim = 0;
            for (;;) {
                if (eat(&c, ')')) break;
                if (npy->ndim == FL_NPY_MAX_DIMS) {
                    *why = "too many dimensions";
                    return 0;
                }
                if (!uint_lit(&c, &npy->shape[npy->ndim])) {
                    *why = "a shape that is not a tuple of non-negative ints";
                    return 0;
                }
                npy->ndim++;
                if (eat(&c, ',')) continue;
                if (npy->ndim == 1 || !eat(&c, ')')) {   /* (5) is an int, not a tuple */
                    *why = "a shape that is not a tuple of non-negative ints";
                    return 0;
                }
                break;
            }
            have_shape = 1;
        } else {
            return 0;
        }
        if (eat(&c, ',')) continue;
        if (!eat(&c, '}')) return 0;
        break;
    }
    skip_ws(&c);
    if (c.p != c.end || !have_descr || !have_order || !have_shape) return 0;
    return 1;
}

int fl_npz_header(const fl_src *s, const fl_zip *z, int k, fl_npy *npy, char *err, size_t errlen)
{
    const fl_zip_member *m = &z->m[k];
    unsigned char lh[LOCAL_BYTES];
    char name[FL_NPZ_NAME_MAX + 5];
    memset(npy, 0, sizeof(*npy));
    if (fl_src_read(s, m->local_offset, lh, LOCAL_BYTES) != 0 || le32(lh) != SIG_LOCAL)
        return fl_fail(FL_ERR_FORMAT, err, errlen, BAD_ZIP "bad local header of '%s.npy')", m->name);
    uint64_t nlen = le16(lh + 26), xlen = le16(lh + 28), nl = strlen(m->name) + 4;
    if (nlen != nl || fl_src_read(s, m->local_offset + LOCAL_BYTES, name, (size_t)nl) != 0
        || memcmp(name, m->name, (size_t)nl - 4) != 0 || memcmp(name + nl - 4, ".npy", 4) != 0)
        return fl_fail(FL_ERR_FORMAT, err, errlen,
                       BAD_ZIP "local header of '%s.npy' names another member)", m->name);
    uint64_t start = m->local_offset + LOCAL_BYTES + nlen + xlen;
    if (start > z->cd_offset || m->size > z->cd_offset - start)
        return fl_fail(FL_ERR_FORMAT, err, errlen,
                       "model file is truncated: member '%s.npy' runs past the archive's end",
                       m->name);
    unsigned char pre[12];
    if (m->size < 10 || fl_src_read(s, start, pre, 10) != 0 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s' is not a .npy array", m->name);
    uint64_t prefix, hlen;
    if (pre[6] == 1 && pre[7] == 0) {
        prefix = 10;
        hlen = le16(pre + 8);
    } else if (pre[6] == 2 && pre[7] == 0) {
        if (m->size < 12 || fl_src_read(s, start, pre, 12) != 0)
            return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s' is truncated", m->name);
        prefix = 12;
        hlen = le32(pre + 8);
    } else {
        return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s': unsupported .npy version (%u, %u)",
                       m->name, pre[6], pre[7]);
    }
    if (hlen > FL_NPY_MAX_HEADER)
        return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s': .npy header too long (%llu bytes)",
                       m->name, (unsigned long long)hlen);
    if (prefix + hlen > m->size)
        return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s' is truncated (in its header)", m->name);
    char *text = malloc(hlen ? (size_t)hlen : 1);
    if (!text) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
    const char *why = NULL;
    int ok = fl_src_read(s, start + prefix, text, (size_t)hlen) == 0
             && parse_header_dict(text, (size_t)hlen, npy, &why);
    free(text);
    if (!ok)
        return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s': bad .npy header (%s)", m->name,
                       why ? why : "unreadable");
    uint64_t count = 1;
    for (int d = 0; d < npy->ndim; d++) {
        if (npy->shape[d] != 0 && count > ((uint64_t)1 << 62) / npy->shape[d])
            return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s' is too large", m->name);
        count *= npy->shape[d];
    }
    if (npy->itemsize && count > ((uint64_t)1 << 62) / npy->itemsize)
        return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s' is too large", m->name);
    npy->count = count;
    npy->nbytes = count * npy->itemsize;
    npy->header_offset = start;
    npy->header_bytes = prefix + hlen;
    npy->data_offset = start + prefix + hlen;
    uint64_t have = m->size - prefix - hlen;
    if (npy->nbytes > have)
        return fl_fail(FL_ERR_FORMAT, err, errlen,
                       "array '%s' is truncated: expected %llu bytes of data, found %llu", m->name,
                       (unsigned long long)npy->nbytes, (unsigned long long)have);
    if (npy->nbytes < have)
        return fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s' has trailing data after its values",
                       m->name);
    return FL_OK;
}

/* ---------------------------------------------------------------- data and CRC-32 */

static void crc_table(uint32_t *t)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        t[n] = c;
    }
}

static uint32_t crc_update(const uint32_t *t, uint32_t crc, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

/* 1 if no value in p (n bytes of f4 or f8) is NaN or infinite: the exponent bits say so */
static int bytes_finite(int type, const unsigned char *p, size_t n)
{
    if (type == FL_NPY_F4) {
        for (size_t i = 0; i + 4 <= n; i += 4)
            if ((le32(p + i) & 0x7f800000u) == 0x7f800000u) return 0;
    } else if (type == FL_NPY_F8) {
        for (size_t i = 0; i + 8 <= n; i += 8)
            if ((le64(p + i) & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) return 0;
    }
    return 1;
}

#define CHUNK (1u << 16)

int fl_npz_data(const fl_src *s, const fl_zip *z, int k, const fl_npy *npy, void *dst,
                int check_finite, char *err, size_t errlen)
{
    const fl_zip_member *m = &z->m[k];
    uint32_t table[256];
    crc_table(table);
    unsigned char *buf = malloc(CHUNK);
    if (!buf) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
    uint32_t crc = 0xffffffffu;
    int st = FL_OK, finite = 1;
    /* the header's bytes count towards the CRC too */
    for (uint64_t off = 0; off < npy->header_bytes; off += CHUNK) {
        size_t n = npy->header_bytes - off < CHUNK ? (size_t)(npy->header_bytes - off) : CHUNK;
        if (fl_src_read(s, npy->header_offset + off, buf, n) != 0) goto unreadable;
        crc = crc_update(table, crc, buf, n);
    }
    /* f4/f8 chunks hold whole values: CHUNK is a multiple of 8 */
    for (uint64_t off = 0; off < npy->nbytes; off += CHUNK) {
        size_t n = npy->nbytes - off < CHUNK ? (size_t)(npy->nbytes - off) : CHUNK;
        unsigned char *p = dst ? (unsigned char *)dst + off : buf;
        if (fl_src_read(s, npy->data_offset + off, p, n) != 0) goto unreadable;
        crc = crc_update(table, crc, p, n);
        if (check_finite && finite) finite = bytes_finite(npy->type, p, n);
    }
    if ((crc ^ 0xffffffffu) != m->crc)
        st = fl_fail(FL_ERR_FORMAT, err, errlen,
                     "model file is corrupt: member '%s.npy' fails its CRC-32 check", m->name);
    else if (!finite)
        st = fl_fail(FL_ERR_FORMAT, err, errlen, "array '%s' contains NaN or infinity", m->name);
    free(buf);
    return st;
unreadable:
    free(buf);
    return fl_fail(FL_ERR_FORMAT, err, errlen, "model file is truncated or unreadable in '%s.npy'",
                   m->name);
}

const char *fl_npy_type_name(const fl_npy *npy, char *buf, size_t len)
{
    static const char *const names[] = {"float32", "float64", "uint8", "int64", "int32", "bool"};
    if (npy->type == FL_NPY_U) {
        snprintf(buf, len, "<U%d", npy->str_len);
        return buf;
    }
    return names[npy->type];
}
