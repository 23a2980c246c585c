/*
 * dist.c - joining an MPI job from the command line.  A command started by
 * mpirun (or srun) joins by itself; --distributed asks for it explicitly
 * (and fails clearly when st3d was built without MPI).  Ranks on one
 * machine share its cores: without --threads, each takes cores / ranks
 * there, so that `mpirun -np 2` on 2 cores runs 2 x 1 threads, not 2 x 2.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The watchdog's message (a rank that stopped answering), before the job
 * is stopped. */
static void on_timeout(const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "\nst3d: %s\n", msg);
    fflush(stderr);
}

int cli_dist_join(int force, double timeout_s, int threads_given, st3d_dist **out) {
    *out = NULL;
    if (!force && !st3d_dist_launched()) return 0;
    st3d_dist_params p = st3d_dist_default_params();
    if (timeout_s >= 0) p.timeout_s = timeout_s;
    p.on_timeout = on_timeout;
    st3d_error err = {0};
    if (!(*out = st3d_dist_init(&p, &err)))
        return cli_errorf("%s: %s", force ? "--distributed" : "started by an MPI launcher (mpirun, srun)",
                          err.msg);
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = getenv("SLURM_NTASKS_PER_NODE");
    long per_node = local ? strtol(local, NULL, 10) : 1, cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (!threads_given && per_node > 1 && cores > 0)
        st3d_set_threads((int)(cores / per_node > 0 ? cores / per_node : 1));
    return 0;
}

int cli_dist_end(st3d_dist *d, int rc, int every_rank) {
    if (!d) return rc;
    /* an error on one rank stops them all at once, rather than leaving
     * the others waiting in their next collective */
    if (rc != 0 && !every_rank && st3d_dist_size(d) > 1) st3d_dist_abort(d, rc);
    st3d_dist_free(d);
    return rc;
}
