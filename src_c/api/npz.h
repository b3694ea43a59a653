/* Reading an .npz archive (a zip of .npy members, as numpy.savez writes it)
 * from an untrusted source, a member at a time.
 *
 * Only what fastlstm's save() writes is accepted: STORED members (no
 * compression), no encryption, at most FL_NPZ_MAX_MEMBERS members named
 * "<name>.npy" with <name> matching [a-z][a-z0-9_]{0,31}, .npy format 1.0 or
 * 2.0 with the header {'descr': ..., 'fortran_order': False, 'shape': (...)}
 * and a descr in the table below. Every offset and size is checked against
 * the source's size before anything is read or allocated, and each member's
 * CRC-32 is checked when its data is read.
 */
#ifndef FL_NPZ_H
#define FL_NPZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FL_NPZ_MAX_MEMBERS 16
#define FL_NPZ_NAME_MAX 32          /* characters of a member name before ".npy" */
#define FL_NPY_MAX_DIMS 8
#define FL_NPY_MAX_HEADER 10000     /* numpy's own limit on a header's length */

/* Where the archive's bytes come from: memory, or an open file. */
typedef struct {
    const unsigned char *mem;
    FILE *fp;
    uint64_t size;
} fl_src;

/* 0, or -1 if [off, off + n) is not inside the source or the read fails. */
int fl_src_read(const fl_src *s, uint64_t off, void *dst, size_t n);

typedef struct {
    char name[FL_NPZ_NAME_MAX + 1];   /* without ".npy" */
    int method;                       /* 0 stored, 8 deflated, ... */
    uint32_t crc;
    uint64_t size;                    /* bytes of the member (stored: in the file too) */
    uint64_t local_offset;            /* its local file header */
} fl_zip_member;

typedef struct {
    int n;
    fl_zip_member m[FL_NPZ_MAX_MEMBERS];
    uint64_t cd_offset;               /* where the central directory starts: data ends before */
} fl_zip;

/* Read and check the central directory. Returns FL_OK, FL_ERR_FORMAT or
 * FL_ERR_UNSUPPORTED (a deflated member) with a message. */
int fl_zip_open(const fl_src *s, fl_zip *z, char *err, size_t errlen);

/* Index of the member called `name`, or -1. */
int fl_zip_find(const fl_zip *z, const char *name);

/* .npy element types. */
enum fl_npy_type { FL_NPY_F4, FL_NPY_F8, FL_NPY_U1, FL_NPY_I8, FL_NPY_I4, FL_NPY_B1, FL_NPY_U };

typedef struct {
    int type;                         /* enum fl_npy_type */
    int str_len;                      /* FL_NPY_U: characters per string ('<U5': 5) */
    uint64_t itemsize;
    int ndim;
    uint64_t shape[FL_NPY_MAX_DIMS];
    uint64_t count;                   /* elements */
    uint64_t nbytes;                  /* count * itemsize: exactly the data after the header */
    uint64_t data_offset;             /* in the source */
    uint64_t header_offset, header_bytes;   /* the member's start and its .npy header's size */
} fl_npy;

/* Check member k's local header and .npy header; fills *npy. */
int fl_npz_header(const fl_src *s, const fl_zip *z, int k, fl_npy *npy, char *err, size_t errlen);

/* Read member k's data (npy->nbytes bytes) into dst, or only scan it with dst
 * NULL; checks the member's CRC-32 and, with check_finite, that float data
 * holds no NaN or infinity. */
int fl_npz_data(const fl_src *s, const fl_zip *z, int k, const fl_npy *npy, void *dst,
                int check_finite, char *err, size_t errlen);

/* The numpy name of an element type as a model config spells it ("float32",
 * "<U5"); buf holds at least 16 bytes. */
const char *fl_npy_type_name(const fl_npy *npy, char *buf, size_t len);

/* printf into err (NULL or errlen 0: nothing); returns status. */
int fl_fail(int status, char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
