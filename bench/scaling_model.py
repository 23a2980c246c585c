#!/usr/bin/python3
"""Throughput of `st3d train` on many machines, estimated from what one
machine measured (bench/ddp_scaling.sh, build/allreduce_bench) and
published network bandwidths; docs/scaling.md explains the model.

  step(p)    = compute + exposed(p)
  allreduce(p) = buckets * 2 (p - 1) * latency
               + 2 (p - 1) / p * gradient_bytes / min(link, stack)
  exposed(p) = allreduce(p)                        (no overlap)
             = max(allreduce(p) - backward, 0)     (full overlap)
  clips/s(p) = p * clips_per_step / step(p)

`stack` is the bus bandwidth the MPI stack reached between two processes
over TCP on loopback here (what the CPUs can copy and add per second,
without any wire); `backward` is the backward pass's share of a step.
Usage: scaling_model.py --compute S --clips N --grad-mib M --buckets K
                        --stack-gbs G [--backward-share 0.6]
"""
import argparse

# Published line rates (payload bandwidth a bit lower) and typical MPI
# latencies: 10/25 GbE with TCP, 100 Gb/s InfiniBand EDR with RDMA.
NETWORKS = [
    ("10 GbE (TCP)", 1.25e9, 25e-6),
    ("25 GbE (TCP)", 3.125e9, 20e-6),
    ("100 Gb/s InfiniBand EDR", 12.5e9, 2e-6),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--compute", type=float, required=True, help="seconds per step on one machine")
    ap.add_argument("--clips", type=int, required=True, help="clips per step per machine")
    ap.add_argument("--grad-mib", type=float, required=True)
    ap.add_argument("--buckets", type=float, required=True)
    ap.add_argument("--stack-gbs", type=float, required=True, help="loopback TCP bus bandwidth, GB/s")
    ap.add_argument("--backward-share", type=float, default=0.6)
    a = ap.parse_args()
    grad = a.grad_mib * 1048576
    one = a.clips / a.compute
    print(f"one machine: {one:.2f} clips/s ({a.clips} clips in {a.compute:.2f} s); gradients "
          f"{a.grad_mib:.1f} MiB in {a.buckets:g} buckets; MPI stack over loopback {a.stack_gbs:.2f} GB/s")
    print(f"{'network':26s} {'machines':>8s} {'all-reduce':>11s} {'clips/s (no overlap)':>21s} "
          f"{'clips/s (overlap)':>18s} {'efficiency':>11s}")
    for name, bw, lat in NETWORKS:
        for p in (8, 64, 512):
            eff_bw = min(bw, a.stack_gbs * 1e9)
            ar = a.buckets * 2 * (p - 1) * lat + 2 * (p - 1) / p * grad / eff_bw
            no = p * a.clips / (a.compute + ar)
            ov = p * a.clips / (a.compute + max(ar - a.backward_share * a.compute, 0.0))
            print(f"{name:26s} {p:8d} {ar * 1e3:9.0f} ms {no:21.1f} {ov:18.1f} "
                  f"{no / (p * one):6.0%}-{ov / (p * one):.0%}")


if __name__ == "__main__":
    main()
