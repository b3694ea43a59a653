/* fl_activation: the kernels' activations (vec_activations_impl.h) over an
 * array, for the accuracy tests. */
#include <stdlib.h>
#include "fastlstm.h"
#include "fl_simd.h"

#define FL_F32
#include "real_type.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "activations_array_impl.h"
#undef FL_F32
#define FL_F64
#include "real_type.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "activations_array_impl.h"
