"""`st3d make-annotations` against the original util_scripts' JSON layout
(re-derived here in Python from the same split files), reading that JSON
back through the loader, and `st3d extract-frames` (frame counts, sizes,
pixels close to ffmpeg's own scaling, skipping finished videos)."""
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from common import Checker, ffmpeg, ffmpeg_rgb, run, st3d_path, tmpdir

ST3D = st3d_path()
C = Checker()


def frames(d, n):
    d.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        Image.fromarray(np.full((24, 32, 3), i * 9 % 256, np.uint8)).save(d / ("image_%05d.jpg" % i))


def ucf101(root):
    src = root / "ucfTrainTestlist"
    src.mkdir()
    (src / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 Archery\r\n3 Basketball\r\n")
    (src / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nArchery/v_Archery_g08_c02.avi 2\r\n"
        "Basketball/v_Basketball_g09_c01.avi 3\r\n")
    (src / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
                                        "Archery/v_Archery_g01_c01.avi\r\n")
    vids = root / "ucf_jpg"
    n = {"v_ApplyEyeMakeup_g08_c01": 20, "v_Archery_g08_c02": 17, "v_Basketball_g09_c01": 30,
         "v_ApplyEyeMakeup_g01_c01": 12, "v_Archery_g01_c01": 25}
    for k, m in n.items():
        frames(vids / k.split("_")[1] / k, m)
    # the reference: what ucf101_json.py produces from the same files
    labels = ["ApplyEyeMakeup", "Archery", "Basketball"]
    db = {}
    for f, sub in (("trainlist01.txt", "training"), ("testlist01.txt", "validation")):
        for line in (src / f).read_text().split():
            if "/" not in line:
                continue
            lab, name = line.split("/")
            key = name.split(".")[0]
            db[key] = {"subset": sub, "annotations": {"label": lab, "segment": [1, n[key] + 1]}}
    return src, vids, {"labels": labels, "database": db}


def hmdb51(root):
    src = root / "testTrainMulti_7030_splits"
    src.mkdir()
    (src / "brush_hair_test_split1.txt").write_text("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
                                                    "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 2 \n"
                                                    "unused_brush_hair_0.avi 0 \n")
    (src / "brush_hair_test_split2.txt").write_text("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n")
    (src / "sword_exercise_test_split1.txt").write_text("Sword_exercise_sword_exercise_f_cm_np1_le_med_0.avi 1 \n")
    vids = root / "hmdb_jpg"
    n = {"April_09_brush_hair_u_nm_np1_ba_goo_0": 9,
         "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0": 14,
         "Sword_exercise_sword_exercise_f_cm_np1_le_med_0": 11}
    lab = {"April_09_brush_hair_u_nm_np1_ba_goo_0": "brush_hair",
           "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0": "brush_hair",
           "Sword_exercise_sword_exercise_f_cm_np1_le_med_0": "sword_exercise"}
    for k, m in n.items():
        frames(vids / lab[k] / k, m)
    db = {"April_09_brush_hair_u_nm_np1_ba_goo_0": "training",
          "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0": "validation",
          "Sword_exercise_sword_exercise_f_cm_np1_le_med_0": "training"}
    ref = {"labels": ["brush_hair", "sword_exercise"],
           "database": {k: {"subset": s, "annotations": {"label": lab[k], "segment": [1, n[k] + 1]}}
                        for k, s in db.items()}}
    return src, vids, ref


def kinetics(root):
    src = root / "kinetics"
    src.mkdir()
    (src / "kinetics-400_train.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,--0NfE5lRSU,10,20,train,0\n"
        "\"passing American football (in game)\",-0Ab1Xsc8Wo,3,13,train,0\n"
        "abseiling,0aXy5gUx7q8,120,130,train,0\n")
    (src / "kinetics-400_val.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "\"passing American football (in game)\",zzB8lLg7_aQ,0,10,val,0\n")
    (src / "kinetics-400_test.csv").write_text("youtube_id,time_start,time_end,split\n"
                                               "tst1,5,15,test\n")
    vids = root / "kin_jpg"
    frames(vids / "abseiling" / "--0NfE5lRSU_000010_000020", 15)
    frames(vids / "passing American football (in game)" / "zzB8lLg7_aQ_000000_000010", 12)
    ref = {"labels": ["abseiling", "passing American football (in game)"], "database": {
        "--0NfE5lRSU_000010_000020": {"subset": "training", "annotations": {
            "label": "abseiling", "segment": [1, 16]}},
        "-0Ab1Xsc8Wo_000003_000013": {"subset": "training", "annotations": {
            "label": "passing American football (in game)"}},
        "0aXy5gUx7q8_000120_000130": {"subset": "training", "annotations": {"label": "abseiling"}},
        "zzB8lLg7_aQ_000000_000010": {"subset": "validation", "annotations": {
            "label": "passing American football (in game)", "segment": [1, 13]}},
        "tst1_000005_000015": {"subset": "testing", "annotations": {}}}}
    return src, vids, ref


def main():
    with tmpdir() as d:
        root = Path(d)
        for name, make, extra in (("ucf101", ucf101, []), ("hmdb51", hmdb51, []),
                                  ("kinetics", kinetics, ["--n-classes", "400"])):
            src, vids, ref = make(root)
            out = root / (name + ".json")
            run([ST3D, "make-annotations", "--dataset", name, "--src", src, "--video-path", vids,
                 "--dst", out] + extra)
            got = json.load(open(out))
            C.check(got == ref, "%s: JSON equals the original layout%s" % (
                name, "" if got == ref else ": %s" % json.dumps(got)[:600]))
            C.check(list(got["database"]) == list(ref["database"]), name + ": entry order")
            # read back through the loader: training clips carry the right labels
            o = root / ("out_" + name)
            run([ST3D, "sample-clips", "--annotation-path", out, "--video-path", vids,
                 "--out-dir", o, "--batch-size", "2", "--n-threads", "1", "--sample-size", "16",
                 "--sample-duration", "4", "--train-crop", "center", "--no-shuffle", "--quiet"])
            recs = [json.loads(l) for l in open(o / "clips.jsonl")]
            want = [(k, ref["labels"].index(v["annotations"]["label"]))
                    for k, v in ref["database"].items() if v["subset"] == "training"
                    and "segment" in v["annotations"]]
            C.check([(r["video_id"], r["label"]) for r in recs] == want,
                    "%s: loader reads the JSON back (%d training clips)" % (name, len(recs)))
            # --classes: a subset of the classes, labelled in the order given
            keep = [ref["labels"][-1], ref["labels"][0]]
            sub = root / (name + "_sub.json")
            run([ST3D, "make-annotations", "--dataset", name, "--src", src, "--video-path", vids,
                 "--dst", sub, "--classes", ",".join(keep)] + extra)
            got = json.load(open(sub))
            want_db = {k: v for k, v in ref["database"].items()
                       if "label" not in v["annotations"] or v["annotations"]["label"] in keep}
            C.check(got["labels"] == keep and got["database"] == want_db,
                    "%s --classes %s: labels in that order, other classes' videos dropped" %
                    (name, ",".join(keep)))
            p = run([ST3D, "make-annotations", "--dataset", name, "--src", src, "--dst", sub,
                     "--classes", keep[0] + ",NoSuchClass"] + extra, check=False)
            C.check(p.returncode != 0 and "NoSuchClass" in p.stderr and p.stderr.count("\n") == 1,
                    "%s --classes with an unknown class: one line naming it (%r)" % (name, p.stderr))
        # ActivityNet: v1.3 JSON + fps from the videos, read back per instance
        an = root / "anet"
        an.mkdir()
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-t", "4", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", an / "v_abc.mp4")
        v13 = {"version": "VERSION 1.3", "taxonomy": [
            {"nodeId": 0, "nodeName": "Root", "parentId": None},
            {"nodeId": 1, "nodeName": "Sports", "parentId": 0},
            {"nodeId": 2, "nodeName": "Long jump", "parentId": 1},
            {"nodeId": 3, "nodeName": "Archery", "parentId": 1}],
            "database": {"abc": {"subset": "training", "duration": 4.0, "annotations": [
                {"segment": [0.5, 2.0], "label": "Archery"},
                {"segment": [2.1, 2.2], "label": "Archery"},
                {"segment": [1.0, 3.9], "label": "Long jump"}]}}}
        json.dump(v13, open(an / "v13.json", "w"))
        run([ST3D, "make-annotations", "--dataset", "activitynet", "--src", an / "v13.json",
             "--video-path", an, "--dst", an / "anet.json"])
        got = json.load(open(an / "anet.json"))
        C.check(got["labels"] == ["Long jump", "Archery"], "activitynet: labels are the leaves")
        C.check(abs(got["database"]["abc"]["fps"] - 25) < 1e-6, "activitynet: fps from the video")
        o = root / "out_anet"
        run([ST3D, "sample-clips", "--annotation-path", an / "anet.json", "--video-path", an,
             "--out-dir", o, "--batch-size", "4", "--n-threads", "1", "--sample-size", "16",
             "--sample-duration", "4", "--train-crop", "center", "--train-t-crop", "center",
             "--no-shuffle", "--quiet"])
        recs = [json.loads(l) for l in open(o / "clips.jsonl")]
        # instances: frames [floor(0.5*25)+1, floor(2.0*25)+1) = [13, 51), the 0.1 s one is
        # under 8 frames and dropped, [26, min(98, 100)) ; center crops of 4
        exp = []
        for b, e, lab in ((13, 51, 1), (26, 98, 0)):
            n = e - b
            s = max(0, n // 2 - 2)
            exp.append((b + s, b + s + 4, lab))
        C.check([(r["begin"], r["end"], r["label"]) for r in recs] == exp,
                "activitynet: instances and their frame ranges %s" % [(r["begin"], r["end"], r["label"]) for r in recs])

        # extract-frames
        src = root / "vids"
        (src / "A").mkdir(parents=True)
        (src / "B").mkdir(parents=True)
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "1.2", "-c:v", "mpeg4",
               "-q:v", "2", src / "A" / "land.avi")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "0.6", "-vf",
               "scale=90:130", "-c:v", "mpeg4", "-q:v", "2", src / "B" / "port.avi")
        (src / "B" / "broken.avi").write_text("not a video")
        (src / "B" / "notes.txt").write_text("ignored")
        dst = root / "jpg"
        p = run([ST3D, "extract-frames", src, dst, "--dataset", "ucf101", "--size", "64",
                 "--n-jobs", "2", "--quality", "95"], check=False)
        C.check(p.returncode == 1 and "broken.avi" in p.stderr, "extract-frames reports the broken video")
        for cls, name, wh in (("A", "land", (85, 64)), ("B", "port", (64, 92))):
            fs = sorted((dst / cls / name).iterdir())
            ref = ffmpeg_rgb(src / cls / (name + ".avi"),
                             "scale=-1:64" if wh[0] > wh[1] else "scale=64:-1")
            n_ref = ref.size // (wh[0] * wh[1] * 3)
            C.check([f.name for f in fs] == ["image_%05d.jpg" % i for i in range(1, n_ref + 1)],
                    "%s: image_00001.jpg .. image_%05d.jpg" % (name, n_ref))
            im = np.asarray(Image.open(fs[0]).convert("RGB"))
            C.check(im.shape == (wh[1], wh[0], 3), "%s: size %s" % (name, im.shape))
            # ffmpeg's scaled frame through PIL's JPEG encoder at the same quality
            buf = io.BytesIO()
            Image.fromarray(ref[:wh[0] * wh[1] * 3].reshape(im.shape)).save(buf, "JPEG", quality=95)
            refj = np.asarray(Image.open(buf).convert("RGB")).astype(int)
            diff = np.abs(im.astype(int) - refj)
            C.check(diff.mean() < 0.5 and diff.max() <= 8,
                    "%s: first frame equals ffmpeg's scaling, JPEG-coded (mean |d| %.3f, max %d)"
                    % (name, diff.mean(), diff.max()))
        p = run([ST3D, "extract-frames", src, dst, "--dataset", "ucf101", "--size", "64"], check=False)
        C.check("0 videos to convert" not in p.stderr and "2 already done" in p.stderr,
                "a rerun skips finished videos: %r" % p.stderr.splitlines()[0])
        dst2 = root / "jpg_h"
        run([ST3D, "extract-frames", src / "A", dst2, "--height", "48", "--n-jobs", "1"],
            check=False)
        im = Image.open(dst2 / "land" / "image_00001.jpg")
        C.check(im.size == (64, 48), "--height 48 keeps the aspect ratio: %s" % (im.size,))
    C.finish()


main()
