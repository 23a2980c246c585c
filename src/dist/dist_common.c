/*
 * dist_common.c - the parts of the distributed API that do not depend on
 * whether st3d was built with MPI: default settings, and telling from the
 * environment whether an MPI launcher started this process.
 */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

st3d_dist_params st3d_dist_default_params(void) {
    st3d_dist_params p;
    memset(&p, 0, sizeof p);
    p.timeout_s = 600.0;
    return p;
}

/* Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; srun sets PMIX_RANK (PMIx)
 * or PMI_RANK / PMI_SIZE (PMI-2). */
int st3d_dist_launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}
