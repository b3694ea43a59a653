/* fl_activation: the kernels' activations over an array, for the accuracy
 * tests. Whole vectors go through the vector forms the epilogues use
 * (vec_activations_impl.h), the tail of fewer than VL values through the scalar
 * forms the partial unit blocks use, so a test that places each input both in
 * a vector and in the tail measures both. */
#include <stdlib.h>
#include "fastlstm.h"
#include "fl_simd.h"

#define FL_F32
#include "real_type.h"
#include "activations_impl.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "activations_array_impl.h"
#undef FL_F32
#define FL_F64
#include "real_type.h"
#include "activations_impl.h"
#include "simd_impl.h"
#include "vec_activations_impl.h"
#include "activations_array_impl.h"
