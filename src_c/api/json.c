/* Strict JSON for model configs: see json.h for what is accepted. No libc
 * number parsing (strtod depends on the locale); recursion depth is bounded. */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastlstm.h"
#include "fastlstm_model.h"
#include "npz.h"   /* fl_fail */

typedef struct {
    fl_json *j;
    const unsigned char *p, *end, *start;
    char *err;
    size_t errlen;
    int status;
} parser;

static int fail(parser *ps, const char *what)
{
    if (ps->status == FL_OK)
        ps->status = fl_fail(FL_ERR_FORMAT, ps->err, ps->errlen,
                             "config is not valid JSON: %s at byte %ld", what,
                             (long)(ps->p - ps->start));
    return -1;
}

static int new_node(parser *ps, int type)
{
    fl_json *j = ps->j;
    if (j->n == j->cap) {
        int cap = j->cap ? 2 * j->cap : 64;
        fl_json_node *nodes = cap > 0 ? realloc(j->nodes, (size_t)cap * sizeof(*nodes)) : NULL;
        if (!nodes) {
            if (ps->status == FL_OK)
                ps->status = fl_fail(FL_ERR_NOMEM, ps->err, ps->errlen, "out of memory parsing the config");
            return -1;
        }
        j->nodes = nodes;
        j->cap = cap;
    }
    fl_json_node *n = &j->nodes[j->n];
    memset(n, 0, sizeof(*n));
    n->type = type;
    n->first = n->next = -1;
    return j->n++;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* ---------------------------------------------------------------- strings */

static int hex4(const unsigned char *p, unsigned *v)
{
    unsigned x = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p[k];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= c - '0';
        else if (c >= 'a' && c <= 'f') x |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x |= c - 'A' + 10;
        else return 0;
    }
    *v = x;
    return 1;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* A string at ps->p (on its opening quote), decoded into j->strings. The
 * decoded bytes and NUL of a string never outnumber its quoted source, so
 * the buffer (the text's length + 1) cannot overflow. */
static int string(parser *ps, const char **out, size_t *outlen)
{
    fl_json *j = ps->j;
    char *o = j->strings + j->used, *start = o;
    ps->p++;   /* the opening quote */
    for (;;) {
        if (ps->p >= ps->end) return fail(ps, "unterminated string");
        unsigned char c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) return fail(ps, "control character in a string");
        if (c != '\\') {
            *o++ = (char)c;   /* (the text is valid UTF-8: checked before parsing) */
            ps->p++;
            continue;
        }
        if (ps->end - ps->p < 2) return fail(ps, "unterminated string");
        unsigned char e = ps->p[1];
        ps->p += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (ps->end - ps->p < 4 || !hex4(ps->p, &cp)) return fail(ps, "bad \\u escape");
            ps->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) return fail(ps, "lone surrogate escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u'
                    || !hex4(ps->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return fail(ps, "lone surrogate escape");
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            o = put_utf8(o, cp);
            break;
        }
        default:
            return fail(ps, "bad escape");
        }
    }
    *o++ = 0;
    *out = start;
    *outlen = (size_t)(o - start - 1);
    j->used += (size_t)(o - start);
    return 0;
}

/* ---------------------------------------------------------------- numbers */

/* 2^1024 - 2^970, the smallest magnitude Python's float() rounds to infinity,
 * as 0.DIGITS x 10^309 */
static const char OVERFLOW_DIGITS[] =
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017"
    "977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273"
    "854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704"
    "342711559699508093042880177904174497792";
#define OVERFLOW_EXP 309
#define MAX_INT_DIGITS 4300   /* Python refuses to parse longer int literals */

/* The significant digits of a number literal, across its integer and
 * fraction parts: digit k of 0.d0 d1 d2 ... */
typedef struct {
    const unsigned char *int_start, *frac_start;
    size_t nint, first, nsig;
} sig_digits;

static int sig_digit(const sig_digits *d, size_t k)
{
    size_t at = d->first + k;
    return (at < d->nint ? d->int_start[at] : d->frac_start[at - d->nint]) - '0';
}

/* Is 0.(digits) x 10^e below OVERFLOW (Python's float() of it finite)? */
static int digits_finite(const sig_digits *d, long e)
{
    if (d->nsig == 0 || e < OVERFLOW_EXP) return 1;
    if (e > OVERFLOW_EXP) return 0;
    size_t nt = sizeof(OVERFLOW_DIGITS) - 1;
    for (size_t k = 0; k < d->nsig || k < nt; k++) {
        int a = k < d->nsig ? sig_digit(d, k) : 0, b = k < nt ? OVERFLOW_DIGITS[k] - '0' : 0;
        if (a != b) return a < b;
    }
    return 0;   /* exactly the midpoint: rounds to even, which is infinity */
}

static int number(parser *ps, int node)
{
    int neg = 0, is_int = 1;
    if (ps->p < ps->end && *ps->p == '-') {
        neg = 1;
        ps->p++;
    }
    const unsigned char *int_start = ps->p;
    if (ps->p < ps->end && *ps->p == 'I') return fail(ps, "non-JSON number (NaN or Infinity)");
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "bad number");
    if (*ps->p == '0') ps->p++;
    else while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    const unsigned char *int_end = ps->p, *frac_start = ps->p, *frac_end = ps->p;
    if (ps->p < ps->end && *ps->p == '.') {
        is_int = 0;
        frac_start = ++ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
        frac_end = ps->p;
        if (frac_end == frac_start) return fail(ps, "bad number");
    }
    long exp10 = 0;
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        is_int = 0;
        ps->p++;
        int eneg = 0;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) eneg = *ps->p++ == '-';
        const unsigned char *es = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            if (exp10 < 100000000L) exp10 = exp10 * 10 + (*ps->p - '0');   /* saturates */
            ps->p++;
        }
        if (ps->p == es) return fail(ps, "bad number");
        if (eneg) exp10 = -exp10;
    }
    if (is_int && int_end - int_start > MAX_INT_DIGITS) return fail(ps, "int literal too long");
    /* value = 0.(significant digits) x 10^e */
    sig_digits d = { int_start, frac_start, (size_t)(int_end - int_start), 0, 0 };
    size_t total = d.nint + (size_t)(frac_end - frac_start);
    d.nsig = total;
    while (d.first < total && sig_digit(&d, 0) == 0) {
        d.first++;
        d.nsig--;
    }
    while (d.nsig > 0 && sig_digit(&d, d.nsig - 1) == 0) d.nsig--;
    long e = (long)d.nint - (long)d.first + exp10;
    int finite = digits_finite(&d, e);
    /* approximate value from the first 19 significant digits */
    long double v = 0;
    size_t nv = d.nsig < 19 ? d.nsig : 19;
    for (size_t k = 0; k < nv; k++) v = v * 10 + sig_digit(&d, k);
    long p10 = e - (long)nv;
    if (d.nsig == 0) v = 0;
    else if (p10 > 400) v = HUGE_VALL;
    else if (p10 < -400) v = 0;
    else v *= powl(10.0L, (long double)p10);
    fl_json_node *n = &ps->j->nodes[node];
    n->finite = finite;
    n->f = finite ? (double)(neg ? -v : v) : (neg ? -HUGE_VAL : HUGE_VAL);
    if (is_int) {
        n->type = FL_J_INT;
        /* int64: at most 19 digits and in range */
        uint64_t u = 0;
        int big = d.nint > 19;
        for (const unsigned char *q = int_start; !big && q < int_end; q++) {
            if (u > (UINT64_MAX - 9) / 10) big = 1;
            else u = u * 10 + (uint64_t)(*q - '0');
        }
        if (!big && u > (uint64_t)INT64_MAX + (uint64_t)neg) big = 1;
        n->big = big;
        n->i = big ? 0 : neg ? (int64_t)(0 - u) : (int64_t)u;
    } else {
        n->type = FL_J_FLOAT;
        if (!finite) return fail(ps, "out-of-range number (its float value is infinite)");
    }
    return 0;
}

/* ---------------------------------------------------------------- values */

static int value(parser *ps, int depth);

static int link_child(parser *ps, int parent, int *last, int child)
{
    fl_json_node *nodes = ps->j->nodes;
    if (*last < 0) nodes[parent].first = child;
    else nodes[*last].next = child;
    *last = child;
    nodes[parent].count++;
    return 0;
}

static int container(parser *ps, int node, int depth, int obj)
{
    int last = -1;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
        ps->p++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t klen = 0;
        skip_ws(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a key");
            if (string(ps, &key, &klen) < 0) return -1;
            for (int c = ps->j->nodes[node].first; c >= 0; c = ps->j->nodes[c].next)
                if (ps->j->nodes[c].klen == klen && memcmp(ps->j->nodes[c].key, key, klen) == 0)
                    return fail(ps, "duplicate key");
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        int child = value(ps, depth + 1);
        if (child < 0) return -1;
        ps->j->nodes[child].key = key;
        ps->j->nodes[child].klen = klen;
        link_child(ps, node, &last, child);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
            ps->p++;
            return 0;
        }
        return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int literal(parser *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) return 0;
    ps->p += n;
    return 1;
}

/* One value; returns its node index or -1. */
static int value(parser *ps, int depth)
{
    if (depth > FL_JSON_MAX_DEPTH) {
        fail(ps, "nesting too deep");
        return -1;
    }
    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail(ps, "unexpected end");
        return -1;
    }
    unsigned char c = *ps->p;
    int node;
    switch (c) {
    case '{':
    case '[':
        node = new_node(ps, c == '{' ? FL_J_OBJ : FL_J_ARR);
        if (node < 0 || container(ps, node, depth, c == '{') < 0) return -1;
        return node;
    case '"': {
        node = new_node(ps, FL_J_STR);
        const char *s;
        size_t n;
        if (node < 0 || string(ps, &s, &n) < 0) return -1;
        ps->j->nodes[node].s = s;
        ps->j->nodes[node].slen = n;
        return node;
    }
    case 't':
    case 'f':
    case 'n':
        node = new_node(ps, c == 'n' ? FL_J_NULL : FL_J_BOOL);
        if (node < 0) return -1;
        if (literal(ps, "true")) ps->j->nodes[node].i = 1;
        else if (!literal(ps, "false") && !literal(ps, "null")) {
            fail(ps, "unknown literal");
            return -1;
        }
        return node;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            node = new_node(ps, FL_J_INT);
            if (node < 0 || number(ps, node) < 0) return -1;
            return node;
        }
        fail(ps, (c == 'N' || c == 'I') ? "non-JSON number (NaN or Infinity)" : "unexpected character");
        return -1;
    }
}

/* ---------------------------------------------------------------- UTF-8 */

/* 1 if p[0..n) is valid UTF-8 as Python's strict decoder has it */
static int valid_utf8(const unsigned char *p, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1; cp = c & 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2; cp = c & 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3; cp = c & 0x07; min = 0x10000;
        } else {
            *bad = i;
            return 0;
        }
        if (n - i <= k) {
            *bad = i;
            return 0;
        }
        for (size_t m = 1; m <= k; m++) {
            if ((p[i + m] & 0xc0) != 0x80) {
                *bad = i;
                return 0;
            }
            cp = cp << 6 | (p[i + m] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            *bad = i;
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

int fl_json_parse(fl_json *j, const char *text, size_t len, char *err, size_t errlen)
{
    memset(j, 0, sizeof(*j));
    size_t bad;
    if (!valid_utf8((const unsigned char *)text, len, &bad))
        return fl_fail(FL_ERR_FORMAT, err, errlen,
                       "config is not valid UTF-8 JSON (bad byte at offset %lu)", (unsigned long)bad);
    j->strcap = len + 1;
    j->strings = malloc(j->strcap);
    if (!j->strings) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory parsing the config");
    parser ps = { j, (const unsigned char *)text, (const unsigned char *)text + len,
                  (const unsigned char *)text, err, errlen, FL_OK };
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        fail(&ps, "a byte-order mark");
        return ps.status;
    }
    if (value(&ps, 0) < 0) return ps.status;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        fail(&ps, "extra data after the value");
        return ps.status;
    }
    return FL_OK;
}

void fl_json_free(fl_json *j)
{
    free(j->nodes);
    free(j->strings);
    memset(j, 0, sizeof(*j));
}

const fl_json_node *fl_json_get(const fl_json *j, const fl_json_node *obj, const char *key)
{
    if (!obj || obj->type != FL_J_OBJ) return NULL;
    size_t n = strlen(key);
    for (int c = obj->first; c >= 0; c = j->nodes[c].next)
        if (j->nodes[c].klen == n && memcmp(j->nodes[c].key, key, n) == 0) return &j->nodes[c];
    return NULL;
}

const fl_json_node *fl_json_child(const fl_json *j, const fl_json_node *node, int i)
{
    if (!node || (node->type != FL_J_ARR && node->type != FL_J_OBJ) || i < 0 || i >= node->count)
        return NULL;
    int c = node->first;
    while (i-- > 0) c = j->nodes[c].next;
    return &j->nodes[c];
}
