#!/usr/bin/python3
"""`mpirun -np 2 st3d train` (data-parallel over Open MPI) against PyTorch.

--part torch
  2 ranks x 2 clips, 10 steps of a ResNet-10 from the same weights on the
  same clips (each rank's batches dumped by `st3d sample-clips --shard-index
  r --shard-count 2`, the loader `st3d train` runs on that rank), against
  PyTorch's DistributedDataParallel on the gloo backend with 2 processes
  (Debian's python3-torch): every step's loss on rank 0 and the final
  weights and running statistics within 1e-4 relative; with per-rank batch
  norm (DDP's default) and with --sync-bn (PyTorch's SyncBatchNorm is
  CUDA-only, so the reference is written here: statistics summed over the
  ranks with an all-reduce whose backward is an all-reduce, and autograd
  does the rest).  --check-replicas makes st3d fail unless both ranks hold
  bit-identical weights after every step.
--part equiv
  with --sync-bn, 2 ranks x B clips equal 1 rank x 2B after 10 steps
  (1e-4 relative, or 4x the difference that running the 1-rank job on 2
  threads instead of 1 makes, where that is more); validation (val.log)
  and `st3d test` (its JSON, byte for byte) split over 2 ranks give what
  one process gives.
--part resume
  equiv, and a 2-rank run stopped after epoch 1 and resumed on 1 rank (2B
  clips) ends with the weights of the uninterrupted 2-rank run.
--part fault
  a rank killed with SIGKILL mid-epoch: the job ends within 60 s with a
  message naming the rank and a non-zero exit; every checkpoint on disk is
  complete; the last one resumes on 1 rank and the run completes.
--part classify
  st3d classify and st3d features under mpirun -np 2 share the videos and
  write what one process writes, byte for byte; failures count job-wide.
Usage: test_ddp.py --st3d ST3D --part torch|equiv|resume|fault|classify
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "torch"))
import st_io  # noqa: E402

TOL = 1e-4
FAILS = []
PASSES = [0]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none")
if os.environ.get("ST3D_SANITIZE"):
    # Open MPI's plug-ins (dlopened, then unloaded: their frames have no
    # module left to name in a suppression) leave allocations behind at
    # MPI_Finalize; LeakSanitizer stays on for every other test
    ENV["ASAN_OPTIONS"] = ENV.get("ASAN_OPTIONS", "").replace("detect_leaks=1", "detect_leaks=0")


def check(cond, what):
    if cond:
        PASSES[0] += 1
        print("ok  ", what)
    else:
        FAILS.append(what)
        print("FAIL", what)


def mpirun(n, st3d, *args, check_rc=True):
    cmd = ["mpirun", "-np", str(n), "--bind-to", "none", st3d] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if check_rc and r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[:3000])
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
    return r


class Setup:
    """A 4-class built-in dataset (5 training videos per class: 20 videos,
    10 per rank), its annotations and well-conditioned ResNet-10 weights."""

    def __init__(self, st3d, tmp):
        self.st3d, self.tmp = st3d, tmp
        run = lambda *a: subprocess.run([st3d] + list(a), check=True, capture_output=True)
        vids = os.path.join(tmp, "motion")
        run("make-dataset", "motion", vids, "--classes", "4", "--train-per-class", "5",
            "--test-per-class", "1", "--frames", "20", "--size", "64", "--threads", "2")
        self.ann = os.path.join(tmp, "ann.json")
        run("make-annotations", "--dataset", "ucf101", "--src", os.path.join(vids, "splits"),
            "--video-path", os.path.join(vids, "videos"), "--dst", self.ann)
        self.videos = os.path.join(vids, "videos")
        import torch
        import ref_resnet
        self.w0 = os.path.join(tmp, "w0.safetensors")
        init = ref_resnet.build("resnet", 10, n_classes=4)
        ref_resnet.randomize(init, torch.Generator().manual_seed(3), bn_beta="margin")
        st_io.save(self.w0, {k: v.detach().numpy() for k, v in init.state_dict().items()})

    def data(self, batch):
        return ["--annotation-path", self.ann, "--video-path", self.videos, "--batch-size", str(batch),
                "--sample-size", "64", "--sample-duration", "8", "--n-threads", "1", "--manual-seed", "5"]

    def train(self, ranks, batch, res, epochs, *extra, check_rc=True):
        args = ["train"] + self.data(batch) + [
            "--weights", self.w0, "--n-classes", "4", "--model", "resnet", "--model-depth", "10",
            "--result-path", res, "--n-epochs", str(epochs), "--no-val", "--learning-rate", "0.005",
            "--checkpoint", "1", "--threads", "1"] + list(extra)
        return mpirun(ranks, self.st3d, *args, check_rc=check_rc)


def batch_losses(res):
    rows = open(os.path.join(res, "train_batch.log"), newline="").read().split("\r\n")[1:]
    return [float(r.split("\t")[3]) for r in rows if r]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def compare_weights(got, ref, what, floor=None):
    """Every tensor of got within TOL (relative) of ref's; with floor (a
    second reference that differs from ref only in the order of its float
    sums), within 4x what that change alone makes where that is more:
    momentum buffers of the stem, whose gradient nearly cancels under batch
    norm, move by 3e-4 when only the thread count changes (AMD Zen 4)."""
    worst, name, moved = 0.0, "", (0.0, "")
    for k, v in ref.items():
        if k.endswith("num_batches_tracked"):
            check(int(np.array(got[k]).reshape(-1)[0]) == int(np.array(v).reshape(-1)[0]), f"{what}: {k}")
            continue
        allowed = TOL
        if floor is not None:
            r = rel(floor[k], v)
            moved = max(moved, (r, k))
            allowed = max(TOL, 4 * r)
        e = rel(got[k], v) / allowed
        if e > worst:
            worst, name = e, k
    if floor is not None:
        print(f"  reordering the sums alone moves {moved[1]} most: {moved[0]:.2e}")
    check(worst <= 1.0, f"{what}: every tensor within {'its allowance' if floor else f'{TOL:g}'} "
          f"(worst {worst:.2f} of it, {name})")


# ------------------------------------------------------------ PyTorch side

def torch_worker(rank, world, tmp, w0, clip_dirs, steps, sync, out):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F
    import ref_resnet
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + os.path.join(tmp, "pg_" + out[-12:]),
                            rank=rank, world_size=world)
    group = dist.new_group(list(range(world)))  # the batch norms' own collectives

    class AllReduceSum(torch.autograd.Function):
        """y = sum over ranks of x; its gradient is the sum over ranks of dy."""
        @staticmethod
        def forward(ctx, x):
            y = x.clone()
            dist.all_reduce(y, group=group)
            return y

        @staticmethod
        def backward(ctx, g):
            g = g.clone()
            dist.all_reduce(g, group=group)
            return g

    class RefSyncBN(nn.Module):
        """BatchNorm3d whose training statistics are those of every rank's
        batch together (two-pass: global mean, then global squared deviations)."""
        def __init__(self, bn):
            super().__init__()
            self.weight = nn.Parameter(bn.weight.detach().clone())
            self.bias = nn.Parameter(bn.bias.detach().clone())
            self.register_buffer("running_mean", bn.running_mean.clone())
            self.register_buffer("running_var", bn.running_var.clone())
            self.register_buffer("num_batches_tracked", bn.num_batches_tracked.clone())
            self.eps, self.momentum = bn.eps, bn.momentum

        def forward(self, x):
            c = (1, -1, 1, 1, 1)
            if not self.training:
                return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                    False, 0.0, self.eps)
            dims = [0, 2, 3, 4]
            count = torch.tensor([float(x.numel() // x.shape[1])])
            dist.all_reduce(count, group=group)
            mean = AllReduceSum.apply(x.sum(dims)) / count
            xc = x - mean.view(c)
            var = AllReduceSum.apply((xc * xc).sum(dims)) / count
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * count / (count - 1))
                self.num_batches_tracked += 1
            return xc * torch.rsqrt(var + self.eps).view(c) * self.weight.view(c) + self.bias.view(c)

    def convert(mod):
        for name, ch in mod.named_children():
            if isinstance(ch, nn.BatchNorm3d):
                setattr(mod, name, RefSyncBN(ch))
            else:
                convert(ch)

    sd, _ = st_io.load(w0)
    model = ref_resnet.build("resnet", 10, n_classes=4)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
    if sync:
        convert(model)
    model.train()
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.005, momentum=0.9, dampening=0, weight_decay=1e-3)
    d = clip_dirs[rank]
    labels = {}
    for line in open(os.path.join(d, "clips.jsonl")):
        c = json.loads(line)
        labels.setdefault((c["epoch"], c["batch"]), []).append(c["label"])
    batches = sorted(f for f in os.listdir(d) if f.startswith("batch_"))
    keys = list(labels)
    losses = []
    for step in range(steps):
        x = torch.from_numpy(np.load(os.path.join(d, batches[step])))
        y = torch.tensor(labels[keys[step]])
        opt.zero_grad()
        loss = F.cross_entropy(ddp(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    if rank == 0:
        state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        np.savez(out, losses=np.array(losses), **{"sd:" + k: v for k, v in state.items()})
    dist.destroy_process_group()


def torch_ddp(tmp, w0, clip_dirs, steps, sync):
    import torch.multiprocessing as mp
    out = os.path.join(tmp, f"torch_{'sync' if sync else 'local'}.npz")
    mp.spawn(torch_worker, args=(2, tmp, w0, clip_dirs, steps, sync, out), nprocs=2, join=True)
    z = np.load(out)
    return list(z["losses"]), {k[3:]: z[k] for k in z.files if k.startswith("sd:")}


def part_torch(s, tmp):
    steps, epochs = 10, 2  # 10 videos per rank, 2 per step: 5 steps per epoch
    clip_dirs = []
    for r in range(2):
        d = os.path.join(tmp, f"clips{r}")
        subprocess.run([s.st3d, "sample-clips"] + s.data(2) + [
            "--n-epochs", str(epochs), "--out-dir", d, "--quiet", "--shard-index", str(r),
            "--shard-count", "2"], check=True, capture_output=True)
        clip_dirs.append(d)
    for sync in (False, True):
        mode = "--sync-bn" if sync else "per-rank BN"
        res = os.path.join(tmp, "sync" if sync else "local")
        t0 = time.time()
        extra = ["--check-replicas"] + (["--sync-bn"] if sync else [])
        s.train(2, 2, res, epochs, *extra)
        t1 = time.time()
        t_loss, t_sd = torch_ddp(tmp, s.w0, clip_dirs, steps, sync)
        t2 = time.time()
        st_loss = batch_losses(res)
        print(f"{mode}: st3d {t1 - t0:.1f} s, torch DDP {t2 - t1:.1f} s")
        check(len(st_loss) == steps, f"{mode}: st3d logged {len(st_loss)} steps")
        for i, (a, b) in enumerate(zip(st_loss, t_loss)):
            e = abs(a - b) / abs(b)
            print(f"  step {i + 1:2d} st3d {a:.6f} torch {b:.6f} rel {e:.1e}")
            check(e <= TOL, f"{mode}: step {i + 1} loss")
        got, _ = st_io.load(os.path.join(res, f"save_{epochs}.safetensors"))
        compare_weights(got, t_sd, f"{mode}: final weights vs DDP")


def part_equiv(s, tmp):
    two = os.path.join(tmp, "two")
    one = os.path.join(tmp, "one")
    s.train(2, 2, two, 2, "--sync-bn", "--check-replicas")
    s.train(1, 4, one, 2, "--sync-bn")
    reorder = os.path.join(tmp, "one_2threads")  # the same sums in another order
    s.train(1, 4, reorder, 2, "--sync-bn", "--threads", "2")
    a, _ = st_io.load(os.path.join(two, "save_2.safetensors"))
    b, _ = st_io.load(os.path.join(one, "save_2.safetensors"))
    c, _ = st_io.load(os.path.join(reorder, "save_2.safetensors"))
    compare_weights(a, b, "--sync-bn: 2 ranks x 2 clips vs 1 rank x 4 clips, 10 steps "
                    "(allowance: max(1e-4, 4x 1 rank on 2 threads vs 1))", floor=c)
    la, lb = batch_losses(two), batch_losses(one)
    print("  losses rank 0 (2 ranks):", " ".join(f"{x:.4f}" for x in la))
    print("  losses (1 rank):        ", " ".join(f"{x:.4f}" for x in lb))
    # validation and st3d test split across ranks give one process's numbers
    ck = os.path.join(two, "save_2.safetensors")
    for ranks in (1, 2):
        res = os.path.join(tmp, f"val{ranks}")
        mpirun(ranks, s.st3d, "train", *s.data(2), "--resume-path", ck, "--result-path", res,
               "--no-train", "--n-epochs", "3", "--n-val-samples", "3", "--threads", "1")
        mpirun(ranks, s.st3d, "test", *s.data(2), "--resume-path", ck, "--result-path", res,
               "--inference-subset", "val", "--inference-stride", "4", "--threads", "1")
    v1, v2 = (open(os.path.join(tmp, f"val{r}", "val.log")).read() for r in (1, 2))
    print("  val.log, 1 rank:", v1.split("\n")[1], " 2 ranks:", v2.split("\n")[1])
    r1 = [float(x) for x in v1.split("\n")[1].split("\t")]
    r2 = [float(x) for x in v2.split("\n")[1].split("\t")]
    check(max(abs(x - y) for x, y in zip(r1, r2)) <= 1e-9 * max(1.0, abs(r1[1])),
          "validation on 2 ranks: val.log's loss and accuracy equal one process's")
    j1, j2 = (open(os.path.join(tmp, f"val{r}", "val.json"), "rb").read() for r in (1, 2))
    check(len(json.loads(j1)["results"]) == 4, "st3d test: 4 videos in val.json")
    check(j1 == j2, "st3d test on 2 ranks: val.json byte for byte one process's")
    return a


def part_classify(s, tmp):
    """st3d classify / features under mpirun: the ranks share the videos
    (every one once) and the outputs equal one process's byte for byte; a
    file that is not a video fails on whichever rank has it, is counted in
    the job's totals, and every rank exits 1."""
    vids = sorted(os.path.join(s.videos, d, f) for d in os.listdir(s.videos)
                  for f in os.listdir(os.path.join(s.videos, d)))[:7]
    bad = os.path.join(tmp, "not_a_video.mp4")
    with open(bad, "wb") as f:
        f.write(b"this is not a video" * 100)
    lst = os.path.join(tmp, "list.txt")
    with open(lst, "w") as f:
        f.write("\n".join(vids[:3] + [bad] + vids[3:]) + "\n")
    common = ["--weights", s.w0, "--sample-duration", "8", "--stride", "4", "--sample-size", "32",
              "--batch-size", "3", "--threads", "1"]
    outs = {}
    for ranks in (1, 2):
        o = os.path.join(tmp, f"cls{ranks}")
        r1 = mpirun(ranks, s.st3d, "classify", *common, "--output", o + ".json", lst, check_rc=False)
        r2 = mpirun(ranks, s.st3d, "features", *common, "--output", o + "_feat", lst, check_rc=False)
        check(r1.returncode != 0 and r2.returncode != 0, f"{ranks} rank(s): exit non-zero (a bad file)")
        if ranks == 2:
            check("all 2 ranks: 7 videos done, 1 failed" in r1.stderr, "2 ranks: the job's totals: 7 done, 1 failed")
            check("not_a_video.mp4" in r1.stderr, "the bad file is named")
        feats = {}
        for f in sorted(os.listdir(o + "_feat")):
            feats[f] = open(os.path.join(o + "_feat", f), "rb").read()
        outs[ranks] = (open(o + ".json", "rb").read(), feats)
    check(outs[1][0] == outs[2][0], "classify OUT.json: 2 ranks = 1 process, byte for byte")
    check(len(outs[1][1]) == 14 and outs[1][1] == outs[2][1],
          f"features: {len(outs[2][1])} files, 2 ranks = 1 process, byte for byte")


def part_resume(s, tmp):
    a = part_equiv(s, tmp)
    # resume on another rank count: epoch 1 on 2 ranks, epoch 2 on 1 rank
    part = os.path.join(tmp, "part")
    s.train(2, 2, part, 1, "--sync-bn")
    s.train(1, 4, part, 2, "--sync-bn", "--resume-path", os.path.join(part, "save_1.safetensors"))
    c, meta = st_io.load(os.path.join(part, "save_2.safetensors"))
    compare_weights(c, a, "resumed on 1 rank after 1 epoch on 2 vs 2 epochs on 2 ranks")
    rows = open(os.path.join(part, "train.log")).read().split("\n")
    check(len([r for r in rows if r.strip()]) == 3, "resumed run's train.log: header + epochs 1, 2")


def rank_pid(root, rank):
    """The pid of the st3d process of MPI rank `rank` under mpirun pid root."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"st3d" in cmd and f"OMPI_COMM_WORLD_RANK={rank}".encode() in env and b"train" in cmd:
            return int(pid)
    return None


def complete(path):
    try:
        st_io.load(path)
        return True
    except Exception as e:  # noqa: BLE001
        print("  incomplete:", path, e)
        return False


def part_fault(s, tmp):
    kill_rank(s, tmp, signal.SIGKILL)
    # a rank that stops answering without dying (a machine that dropped out):
    # the others' watchdog (--dist-timeout) stops the job
    kill_rank(s, tmp, signal.SIGSTOP)


def kill_rank(s, tmp, sig):
    what = "killed" if sig == signal.SIGKILL else "stopped (SIGSTOP)"
    res = os.path.join(tmp, "fault" + str(int(sig)))
    args = ["train"] + s.data(1) + [
        "--weights", s.w0, "--n-classes", "4", "--model", "resnet", "--model-depth", "10",
        "--result-path", res, "--n-epochs", "40", "--no-val", "--learning-rate", "0.005",
        "--checkpoint", "1", "--threads", "1", "--dist-timeout", "15"]
    cmd = ["mpirun", "-np", "2", "--bind-to", "none", s.st3d] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    # wait for the first checkpoint, then kill rank 1 mid-epoch
    t0 = time.time()
    while not os.path.exists(os.path.join(res, "save_1.safetensors")) and time.time() - t0 < 120:
        time.sleep(0.1)
    time.sleep(1.3)
    pid = rank_pid(p.pid, 1)
    check(pid is not None, "found rank 1's process")
    if pid is None:
        p.kill()
        return
    os.kill(pid, sig)
    killed = time.time()
    try:
        out, _ = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    took = time.time() - killed
    print(out[-1500:])
    check(took <= 60, f"the job ended {took:.1f} s after rank 1 was {what} (<= 60 s)")
    check(p.returncode != 0, f"mpirun exit status {p.returncode} is non-zero")
    if sig == signal.SIGKILL:
        check("rank 1" in out, "the message names rank 1")
    else:
        check("rank 0 of 2: no answer from the other ranks" in out, "rank 0 says it got no answer")
    try:
        os.kill(pid, signal.SIGKILL)  # a stopped rank may outlive mpirun
    except OSError:
        pass
    saves = sorted(f for f in os.listdir(res) if f.startswith("save_"))
    check(all(complete(os.path.join(res, f)) for f in saves), f"every checkpoint complete: {saves}")
    check(not [f for f in os.listdir(res) if ".tmp" in f], "no temporary file left as a checkpoint")
    last = max(saves, key=lambda f: int(f[5:].split(".")[0]))
    done = int(last[5:].split(".")[0])
    r = s.train(1, 2, res, done + 1, "--resume-path", os.path.join(res, last), check_rc=False)
    check(r.returncode == 0 and os.path.exists(os.path.join(res, f"save_{done + 1}.safetensors")),
          f"resumed from {last} on 1 rank and finished epoch {done + 1}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", required=True)
    ap.add_argument("--part", required=True, choices=["torch", "equiv", "resume", "fault", "classify"])
    a = ap.parse_args()
    if not shutil.which("mpirun"):
        print("mpirun not found (apt-get install openmpi-bin)")
        return 1
    tmp = tempfile.mkdtemp()
    try:
        s = Setup(a.st3d, tmp)
        {"torch": part_torch, "equiv": part_equiv, "resume": part_resume, "fault": part_fault,
         "classify": part_classify}[a.part](s, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{PASSES[0]} passed, {len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
