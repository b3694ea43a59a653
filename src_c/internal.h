/* Internal prototypes shared between translation units. */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H
#include "fastlstm.h"
/* fl_gemm_f32/f64 are public (fastlstm.h); nothing else crosses files yet. */
#endif
