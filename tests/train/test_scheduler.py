#!/usr/bin/python3
"""st3d's learning-rate schedules against PyTorch's own schedulers, over
whole runs: MultiStepLR (the original's --lr_scheduler multistep, gamma 0.1)
and ReduceLROnPlateau('min', patience) stepped with a validation loss, as
main.py steps them once per epoch.  The rates must be equal exactly (both
are doubles computed the same way); a milestone list repeated or unsorted
and metrics that plateau, improve by less than the threshold, and recover
are included.  Usage: test_scheduler.py SCHED_TOOL
"""
import random
import subprocess
import sys

import torch


def torch_rates(kind, base_lr, patience, milestones, metrics):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr, momentum=0.9)
    if kind == "multistep":
        sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones)
    else:
        sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", patience=patience)
    out = []
    for m in metrics:
        opt.step()
        if kind == "multistep":
            sch.step()
        else:
            sch.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


def main():
    tool = sys.argv[1]
    rng = random.Random(7)
    cases = []
    n = 200
    flat = [2.0] * n
    noisy = [2.0 * 0.99 ** i + rng.uniform(-0.05, 0.05) for i in range(n)]
    tiny = [1.0 - 1e-5 * i for i in range(n)]  # improves below the 1e-4 threshold
    stairs = [1.0 / (1 + i // 15) for i in range(n)]
    for lr in (0.1, 0.01, 0.003):
        cases.append(("multistep", lr, 10, [50, 100, 150], flat))
        cases.append(("multistep", lr, 10, [3, 3, 7, 120, 40], flat))
        for pat in (0, 3, 10):
            for name, m in (("flat", flat), ("noisy", noisy), ("tiny", tiny), ("stairs", stairs)):
                cases.append(("plateau", lr, pat, [50], m))
    passed = failed = 0
    for kind, lr, pat, ms, metrics in cases:
        want = torch_rates(kind, lr, pat, ms, metrics)
        res = subprocess.run([tool, kind, repr(lr), str(pat), ",".join(map(str, ms))] +
                             [repr(float(x)) for x in metrics], capture_output=True, text=True)
        if res.returncode != 0:
            print(f"FAIL {kind} lr={lr} patience={pat}: sched_tool: {res.stderr.strip()}")
            failed += 1
            continue
        got = [float(x) for x in res.stdout.split()]
        bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
        if len(got) != len(want) or bad:
            i = bad[0] if bad else len(got)
            print(f"FAIL {kind} lr={lr} patience={pat} milestones={ms}: epoch {i + 1}: "
                  f"st3d {got[i] if i < len(got) else None!r} torch {want[i] if i < len(want) else None!r}")
            failed += 1
        else:
            passed += 1
    # the parser refuses what it cannot read
    for bad_text in ("", "10,,x", "[5, -1]", "abc"):
        res = subprocess.run([tool, "multistep", "0.1", "10", bad_text], capture_output=True, text=True)
        if res.returncode == 0 or "--multistep-milestones" not in res.stderr:
            print(f"FAIL milestones {bad_text!r} accepted or unnamed: {res.stderr.strip()!r}")
            failed += 1
        else:
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
