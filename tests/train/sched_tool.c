/*
 * sched_tool.c - drives st3d's learning-rate schedulers through the public
 * API for test_scheduler.py:
 *   sched_tool multistep|plateau BASE_LR PATIENCE "MILESTONES" M1 M2 ...
 * steps the scheduler once per metric Mi (the validation loss of an epoch)
 * and prints the learning rate after each step, one per line, %.17g.
 */
#include <st3d.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: sched_tool multistep|plateau BASE_LR PATIENCE MILESTONES [METRIC...]\n");
        return 2;
    }
    st3d_error err = {0};
    st3d_scheduler_params p = st3d_scheduler_default_params();
    p.kind = strcmp(argv[1], "plateau") ? ST3D_LR_MULTISTEP : ST3D_LR_PLATEAU;
    p.patience = atoi(argv[3]);
    if (st3d_parse_milestones(argv[4], &p, &err) != 0) {
        fprintf(stderr, "sched_tool: %s\n", err.msg);
        return 1;
    }
    st3d_scheduler s;
    if (st3d_scheduler_init(&s, &p, strtod(argv[2], NULL), &err) != 0) {
        fprintf(stderr, "sched_tool: %s\n", err.msg);
        return 1;
    }
    for (int i = 5; i < argc; i++) printf("%.17g\n", st3d_scheduler_step(&s, strtod(argv[i], NULL)));
    return 0;
}
