/* A small strict JSON parser for model configs (RFC 8259, what Python's
 * json.dumps writes), built to agree with what fastlstm/io.py accepts:
 *
 *   - the text must be valid UTF-8 (overlong forms and encoded surrogates
 *     refused, as Python's decoder does); no byte-order mark;
 *   - NaN, Infinity and numbers whose float value overflows (1e999) are
 *     refused, as io.py's parse_constant / parse_float hooks do; an int is
 *     "finite" when Python's float() of it is;
 *   - stricter than Python: duplicate keys, lone surrogate escapes, nesting
 *     deeper than FL_JSON_MAX_DEPTH and int literals longer than 4300 digits
 *     (Python's own int limit) are refused.
 *
 * The tree is a flat array of nodes; children are linked by index. Numbers
 * keep their int value when they are written as ints (no fraction or
 * exponent) and fit in int64, and an approximate double otherwise (enough to
 * range-check a dropout rate; no value read here needs more).
 */
#ifndef FL_JSON_H
#define FL_JSON_H

#include <stddef.h>
#include <stdint.h>

#define FL_JSON_MAX_DEPTH 64

enum fl_json_type { FL_J_NULL, FL_J_BOOL, FL_J_INT, FL_J_FLOAT, FL_J_STR, FL_J_ARR, FL_J_OBJ };

typedef struct {
    int type;           /* enum fl_json_type */
    int big;            /* FL_J_INT outside int64 (i is then not the value) */
    int finite;         /* numbers: Python's float() of the value is finite */
    int64_t i;          /* FL_J_INT value, FL_J_BOOL 0/1 */
    double f;           /* numbers, approximately */
    const char *s;      /* FL_J_STR: decoded UTF-8, NUL-terminated; slen bytes */
    size_t slen;
    const char *key;    /* a member of an object: its key (decoded, NUL-terminated) */
    size_t klen;
    int count;          /* FL_J_ARR / FL_J_OBJ: children */
    int first, next;    /* first child, next sibling: node indices, -1 for none */
} fl_json_node;

typedef struct {
    fl_json_node *nodes;
    int n, cap;
    char *strings;      /* decoded strings and keys */
    size_t used, strcap;
} fl_json;

/* Parse text[0..len). FL_OK, FL_ERR_NOMEM or FL_ERR_FORMAT with a message.
 * The root is j->nodes[0]. Free with fl_json_free, whatever the result. */
int fl_json_parse(fl_json *j, const char *text, size_t len, char *err, size_t errlen);
void fl_json_free(fl_json *j);

/* The member `key` of object node obj, or NULL (obj not an object, or no such key). */
const fl_json_node *fl_json_get(const fl_json *j, const fl_json_node *obj, const char *key);

/* The i-th child of an array or object, or NULL. */
const fl_json_node *fl_json_child(const fl_json *j, const fl_json_node *node, int i);


#endif
