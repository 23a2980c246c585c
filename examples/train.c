/*
 * train.c - training a 3D ResNet on a video dataset through libst3d's public
 * header alone: the original main.py's loop in a few calls.
 *
 *   train ANNOTATION.json VIDEO_ROOT N_CLASSES [EPOCHS] [OUT.safetensors]
 *
 * ANNOTATION.json is the original code's annotation file (st3d
 * make-annotations writes one), VIDEO_ROOT holds the videos or frame folders.
 */
#include <st3d.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int report(const st3d_step_report *r, void *user) {
    (void)user;
    if (r->batch == r->n_batches)
        printf("%s epoch %lld: loss %.4f acc %.3f (%lld clips, %.1f s)\n",
               r->validation ? "val  " : "train", (long long)r->epoch, r->mean_loss, r->mean_acc,
               (long long)r->epoch_clips, r->seconds);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s ANNOTATION.json VIDEO_ROOT N_CLASSES [EPOCHS] [OUT]\n", argv[0]);
        return 2;
    }
    int epochs = argc > 4 ? atoi(argv[4]) : 5;
    st3d_error err = {0};
    st3d_dataset *train = st3d_dataset_open(argv[1], argv[2], "training", &err);
    st3d_dataset *val = train ? st3d_dataset_open(argv[1], argv[2], "validation", &err) : NULL;
    if (!val) goto fail;

    /* a small ResNet-10 on 8 x 64 x 64 clips */
    st3d_model_params mp = st3d_model_default_params();
    mp.model_depth = 10;
    mp.n_classes = atoi(argv[3]);
    mp.resnet_widen_factor = 0.5f;
    st3d_model *model = st3d_model_new(&mp, 1, &err);
    if (!model) goto fail;

    st3d_loader_params lp = st3d_loader_default_params();
    lp.batch_size = 8;
    lp.n_threads = 2;
    lp.sample_size = 64;
    lp.sample_duration = 8;
    st3d_loader *train_l = st3d_loader_new(train, &lp, &err);
    lp.t_crop = ST3D_TCROP_CENTER; /* validation: one centered clip, center crop */
    lp.crop = ST3D_SCROP_CENTER;
    lp.hflip = 0;
    lp.shuffle = 0;
    st3d_loader *val_l = train_l ? st3d_loader_new(val, &lp, &err) : NULL;
    if (!val_l) goto fail;

    st3d_trainer_params tp = st3d_trainer_default_params();
    tp.lr = 0.01;
    tp.on_step = report;
    st3d_trainer *t = st3d_trainer_new(model, &tp, &err);
    if (!t) goto fail;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        st3d_epoch_result tr, vr;
        if (st3d_trainer_train_epoch(t, train_l, epoch, &tr, &err) != 0 ||
            st3d_trainer_val_epoch(t, val_l, epoch, &vr, &err) != 0)
            goto fail;
        st3d_trainer_end_epoch(t, vr.loss);
    }
    if (argc > 5 && st3d_trainer_save(t, argv[5], epochs, NULL, &err) != 0) goto fail;
    printf("done: %lld steps\n", (long long)st3d_trainer_iteration(t));
    st3d_trainer_free(t);
    st3d_loader_free(train_l);
    st3d_loader_free(val_l);
    st3d_model_free(model);
    st3d_dataset_free(train);
    st3d_dataset_free(val);
    return 0;
fail:
    fprintf(stderr, "train: %s\n", err.msg);
    return 1;
}
