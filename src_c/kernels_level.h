/* Every hot kernel, in float32 and float64, compiled for one instruction-set
 * level. A kernels_<level>.c file sets the level's target, vector width
 * (FL_VBYTES), unit block (FL_UNIT_BLOCK) and name suffix (FL_LEVEL_SFX),
 * then includes this once; dispatch.c picks one level's table at load.
 * Compiling whole files per level (rather than marking functions with
 * target_clones) gives every function of the level, OpenMP's outlined
 * region bodies included, the same target and vector width. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fastlstm.h"
#include "fl_omp.h"
#include "fl_simd.h"
#include "internal.h"
#include "level.h"
#include "fl_quant.h"
#include "testing.h"

#define FL_F32
#include "real_type.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "gemm_impl.h"
#include "rnn_common_impl.h"
#include "cells_impl.h"
#include "rnn_forward_impl.h"
#include "rnn_backward_impl.h"
#include "optim_impl.h"
#include "activations_array_impl.h"
#include "quant_impl.h"   /* float32 only: reduced-precision inference */
#undef U
#undef FL_F32

#define FL_F64
#include "real_type.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "gemm_impl.h"
#include "rnn_common_impl.h"
#include "cells_impl.h"
#include "rnn_forward_impl.h"
#include "rnn_backward_impl.h"
#include "optim_impl.h"
#include "activations_array_impl.h"
#undef U
#undef FL_F64

/* fl_gate_cache_cols_<level>: fastlstm.h's fl_gate_cache_cols, through
 * dispatch.c; the same for both types, so the float32 kernels' layout. */
static long FL_CAT(fl_gate_cache_cols, FL_LEVEL_SFX)(int H)
{
    return H < 1 ? 0 : FL_CAT(gate_cache_cols_f32, FL_LEVEL_SFX)(H);
}

#define FL_ENTRY(name) .name = FL_CAT(name, FL_LEVEL_SFX)
const fl_level FL_CAT(fl_level, FL_LEVEL_SFX) = {
    FL_LEVEL_NAME,
    FL_VBYTES,
    FL_UNIT_BLOCK,
    FL_ENTRY(fl_gate_cache_cols),
    FL_ENTRY(fl_rnn_packed_bytes_f32), FL_ENTRY(fl_rnn_packed_bytes_f64),
    FL_ENTRY(fl_rnn_pack_f32), FL_ENTRY(fl_rnn_pack_f64),
    FL_ENTRY(fl_rnn_work_bytes_f32), FL_ENTRY(fl_rnn_work_bytes_f64),
    FL_ENTRY(fl_rnn_forward_f32), FL_ENTRY(fl_rnn_forward_f64),
    FL_ENTRY(fl_rnn_backward_f32), FL_ENTRY(fl_rnn_backward_f64),
    FL_ENTRY(fl_gemm_f32), FL_ENTRY(fl_gemm_f64),
    FL_ENTRY(fl_gemm_naive_f32), FL_ENTRY(fl_gemm_naive_f64),
    FL_ENTRY(fl_adam_f32), FL_ENTRY(fl_adam_f64),
    FL_ENTRY(fl_activation_f32), FL_ENTRY(fl_activation_f64),
    FL_ENTRY(fl_qrnn_packed_bytes), FL_ENTRY(fl_qrnn_pack), FL_ENTRY(fl_qrnn_work_bytes),
    FL_ENTRY(fl_qrnn_forward), FL_ENTRY(fl_qrnn_path),
};
#undef FL_ENTRY
