# The built-in experiment's settings, sourced by quickstart.sh,
# control_2d.sh and finetune.sh so that the three train the same way.
#
# A small 3D ResNet (the paper's ResNet-10 at a quarter of its width, a
# 3-frame conv1) on 8-frame clips of 56x56 pixels; SGD as the original
# main.py (momentum 0.9, weight decay 1e-3), learning rate 0.01 for batches
# of 16, divided by 10 at epochs 30 and 36.  The whole frame is the clip
# (--train-crop center): the motion dataset's frames are square and its
# shapes may sit anywhere, so a random crop could cut the moving shape out.
# No flips: a flip turns MoveLeft into MoveRight.
ST3D=${ST3D:-build/st3d}
WORK=${WORK:-quickstart}
EPOCHS=${EPOCHS:-40}
NET=(--model resnet --model-depth 10 --resnet-widen-factor 0.25 --conv1-t-size 3)
CLIPS=(--sample-size 56 --sample-duration 8)
TRAIN=(--no-hflip --train-crop center --batch-size 16 --learning-rate 0.01
       --weight-decay 1e-3 --multistep-milestones 30,36 --n-val-samples 1)

# make_motion DIR: the dataset (8 classes x 100 training + 20 test videos)
# and its annotation JSON DIR.json
make_motion() {
    "$ST3D" make-dataset motion "$1"
    "$ST3D" make-annotations --dataset ucf101 --src "$1/splits" \
        --video-path "$1/videos" --dst "$1.json"
}
