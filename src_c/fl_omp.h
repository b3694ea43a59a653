/* The one doorway to OpenMP: kernels include this, never <omp.h>, so a build
 * without OpenMP compiles the same code single-threaded (the pragmas are ignored). */
#ifndef FL_OMP_H
#define FL_OMP_H
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
#endif
#endif
