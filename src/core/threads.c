/*
 * threads.c - the one thread pool: OpenMP's, shared by oneDNN (Debian's
 * libdnnl is built with the OpenMP runtime) and st3d's own kernels.  Setting
 * the OpenMP thread count therefore sets every compute thread at once.  This
 * is the only global mutable state of the library.
 */
#include "core.h"

#include <omp.h>

void st3d_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
}

int st3d_get_threads(void) { return omp_get_max_threads(); }

int st3d_get_cpus(void) { return omp_get_num_procs(); }
