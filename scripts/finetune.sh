#!/bin/bash
# Fine-tuning on the built-in dataset, as the paper's Section 4.5 does from
# Kinetics to UCF-101: a network trained from scratch on the four axis
# directions (MoveLeft, MoveRight, MoveUp, MoveDown) is fine-tuned to the
# four diagonal ones with --pretrain-path and --ft-begin-module layer4
# (conv1 .. layer3 frozen, layer4 and a new classifier trained, as the
# original's get_fine_tuning_parameters), against the same network trained
# from scratch on the diagonals for the same number of epochs.  Prints both
# video-level top-1 accuracies and checks that every frozen parameter is
# bit for bit the pretrained one.
#   WORK=DIR   the quickstart folder (default: ./quickstart)
#   FT_EPOCHS  epochs of fine-tuning and of the baseline (10)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/motion_recipe.sh
FT_EPOCHS=${FT_EPOCHS:-10}
[ -f "$WORK/motion.json" ] || make_motion "$WORK/motion"
R=$WORK/finetune
mkdir -p "$R"
for part in axes:MoveLeft,MoveRight,MoveUp,MoveDown \
            diagonals:MoveUpLeft,MoveUpRight,MoveDownLeft,MoveDownRight; do
    "$ST3D" make-annotations --dataset ucf101 --src "$WORK/motion/splits" \
        --video-path "$WORK/motion/videos" --classes "${part#*:}" --dst "$R/${part%%:*}.json"
done
data() { echo --video-path "$WORK/motion/videos" --annotation-path "$R/$1.json" \
              --n-classes 4 --result-path "$R/$2"; }
# shellcheck disable=SC2046
{
$ST3D train $(data axes pretrain) "${NET[@]}" "${CLIPS[@]}" "${TRAIN[@]}" \
    --n-epochs "$EPOCHS" --checkpoint "$EPOCHS"
$ST3D train $(data diagonals finetuned) "${NET[@]}" "${CLIPS[@]}" "${TRAIN[@]}" \
    --n-epochs "$FT_EPOCHS" --checkpoint "$FT_EPOCHS" --multistep-milestones 1000 \
    --pretrain-path "$R/pretrain/save_$EPOCHS.safetensors" --n-pretrain-classes 4 \
    --ft-begin-module layer4
$ST3D train $(data diagonals scratch) "${NET[@]}" "${CLIPS[@]}" "${TRAIN[@]}" \
    --n-epochs "$FT_EPOCHS" --checkpoint "$FT_EPOCHS" --multistep-milestones 1000
for run in finetuned scratch; do
    $ST3D test $(data diagonals $run) "${NET[@]}" "${CLIPS[@]}" \
        --resume-path "$R/$run/save_$FT_EPOCHS.safetensors" --inference-subset val \
        --inference-stride 8
    echo "== $run, $FT_EPOCHS epochs on the diagonals:"
    $ST3D eval --results "$R/$run/val.json" --annotation-path "$R/diagonals.json" \
        --output-json "$R/$run/accuracy.json"
done
}
# frozen parameters (every one before layer4) must be the pretrained ones
/usr/bin/python3 - "$R/pretrain/save_$EPOCHS.safetensors" "$R/finetuned/save_$FT_EPOCHS.safetensors" <<'PY'
import json, struct, sys
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items()
            if k != "__metadata__" and not k.startswith("optimizer.")}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
# parameters only: batch norm's running statistics keep updating in frozen
# layers, as in the original (model.train() with those parameters left out
# of the optimizer)
stats = ("running_mean", "running_var", "num_batches_tracked")
frozen = [k for k in a if not k.startswith(("layer4.", "fc.")) and not k.endswith(stats)]
bad = [k for k in frozen if a[k] != b.get(k)]
changed = [k for k in b if k.startswith("layer4.") and k.endswith("weight") and a[k] != b[k]]
print(f"frozen tensors bit-unchanged: {len(frozen) - len(bad)} of {len(frozen)}; "
      f"layer4 weights trained: {len(changed)}")
sys.exit(1 if bad or not changed else 0)
PY
