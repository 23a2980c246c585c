/*
 * scheduler.c - learning-rate schedules, as PyTorch's (the original
 * main.py's --lr_scheduler):
 *
 *   multistep  torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones,
 *              gamma=0.1): at the step that brings the epoch count to a
 *              milestone, lr *= gamma ** (occurrences of that milestone in
 *              the list), in double precision as PyTorch's get_lr, so the
 *              values match bit for bit.
 *   plateau    torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, 'min',
 *              patience): mode min, threshold 1e-4 relative, cooldown 0,
 *              factor 0.1, min_lr 0, eps 1e-8; stepped with the validation
 *              loss.
 *
 * The state is a few numbers (st3d_scheduler), saved in checkpoints.
 */
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

st3d_scheduler_params st3d_scheduler_default_params(void) {
    st3d_scheduler_params p;
    memset(&p, 0, sizeof p);
    p.kind = ST3D_LR_MULTISTEP;
    p.milestones[0] = 50; /* opts.py: --multistep_milestones [50, 100, 150] */
    p.milestones[1] = 100;
    p.milestones[2] = 150;
    p.n_milestones = 3;
    p.gamma = 0.1;
    p.patience = 10; /* --plateau_patience */
    p.threshold = 1e-4;
    p.eps = 1e-8;
    return p;
}

int st3d_scheduler_init(st3d_scheduler *s, const st3d_scheduler_params *p, double base_lr,
                        st3d_error *err) {
    if (p->n_milestones < 0 || p->n_milestones > ST3D_MAX_MILESTONES)
        return st3d_fail(err, ST3D_ERR_INVALID, "--multistep-milestones: at most %d milestones",
                         ST3D_MAX_MILESTONES);
    for (int i = 0; i < p->n_milestones; i++)
        if (p->milestones[i] < 1)
            return st3d_fail(err, ST3D_ERR_INVALID, "--multistep-milestones: milestone %d is not positive",
                             p->milestones[i]);
    if (p->patience < 0) return st3d_fail(err, ST3D_ERR_INVALID, "--plateau-patience: negative");
    if (!(p->gamma > 0.0 && p->gamma < 1.0))
        return st3d_fail(err, ST3D_ERR_INVALID, "scheduler factor %g is not in (0, 1)", p->gamma);
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->lr = base_lr;
    s->best = INFINITY;
    return 0;
}

double st3d_scheduler_step(st3d_scheduler *s, double metric) {
    const st3d_scheduler_params *p = &s->p;
    s->last_epoch++;
    if (p->kind == ST3D_LR_MULTISTEP) {
        int hits = 0;
        for (int i = 0; i < p->n_milestones; i++) hits += p->milestones[i] == s->last_epoch;
        /* MultiStepLR.get_lr: lr * gamma ** (times last_epoch is listed) */
        if (hits) s->lr *= pow(p->gamma, hits);
        return s->lr;
    }
    /* ReduceLROnPlateau, mode 'min', threshold_mode 'rel' */
    if (metric < s->best * (1.0 - p->threshold)) {
        s->best = metric;
        s->num_bad_epochs = 0;
    } else {
        s->num_bad_epochs++;
    }
    if (s->cooldown_counter > 0) {
        s->cooldown_counter--;
        s->num_bad_epochs = 0;
    }
    if (s->num_bad_epochs > p->patience) {
        double next = fmax(s->lr * p->gamma, p->min_lr);
        if (s->lr - next > p->eps) s->lr = next;
        s->cooldown_counter = p->cooldown;
        s->num_bad_epochs = 0;
    }
    return s->lr;
}

int st3d_parse_milestones(const char *text, st3d_scheduler_params *p, st3d_error *err) {
    int n = 0;
    const char *c = text;
    while (*c == ' ' || *c == '[') c++;
    while (*c && *c != ']') {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c || v < 1 || v > 1000000)
            return st3d_fail(err, ST3D_ERR_INVALID,
                             "--multistep-milestones '%s': expected positive epoch numbers "
                             "separated by spaces or commas", text);
        if (n == ST3D_MAX_MILESTONES)
            return st3d_fail(err, ST3D_ERR_INVALID, "--multistep-milestones '%s': more than %d",
                             text, ST3D_MAX_MILESTONES);
        p->milestones[n++] = (int)v;
        c = end;
        while (*c == ' ' || *c == ',') c++;
    }
    if (*c == ']') c++;
    while (*c == ' ') c++;
    if (*c || n == 0)
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "--multistep-milestones '%s': expected positive epoch numbers "
                         "separated by spaces or commas", text);
    p->n_milestones = n;
    return 0;
}
