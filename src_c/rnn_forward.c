#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include "fastlstm.h"
#include "fl_omp.h"
#include "fl_simd.h"
#include "internal.h"

#define FL_F32
#include "real_type.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "rnn_common_impl.h"
#include "rnn_forward_impl.h"
#undef U
#undef FL_F32
#define FL_F64
#include "real_type.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "rnn_common_impl.h"
#include "rnn_forward_impl.h"
#undef U

long fl_gate_cache_cols(int H)
{
    if (H < 1) return 0;
    return 4L * ((H + FL_UNIT_BLOCK - 1) / FL_UNIT_BLOCK) * FL_UNIT_BLOCK;
}
