/* Fused optimizer steps over flat parameter buffers (optim_impl.h). */
#include <math.h>
#include "fastlstm.h"
#include "fl_omp.h"
#include "fl_simd.h"

#define FL_F32
#include "real_type.h"
#include "optim_impl.h"
#undef FL_F32
#define FL_F64
#include "real_type.h"
#include "optim_impl.h"
