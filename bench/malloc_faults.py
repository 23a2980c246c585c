#!/usr/bin/python3
"""Why the test suite spent a third of its time in the kernel: PyTorch's
native conv3d (oneDNN off, as the reference tests run it) allocates and frees
big im2col buffers on every call, and glibc hands blocks above its mmap
threshold back to the kernel, so each call page-faults them in again.
Compare, with the machine idle:
  /usr/bin/time -f "%e s wall %U user %S sys %R minflt" /usr/bin/python3 bench/malloc_faults.py
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824 \
    /usr/bin/time -f "%e s wall %U user %S sys %R minflt" /usr/bin/python3 bench/malloc_faults.py
(tests/CMakeLists.txt sets that GLIBC_TUNABLES for every test.)"""
import torch, time
torch.backends.mkldnn.enabled = False
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Conv3d(64,64,3,padding=1), torch.nn.BatchNorm3d(64), torch.nn.ReLU(), torch.nn.Conv3d(64,64,3,padding=1))
x = torch.randn(4,64,8,20,20, requires_grad=True)
t=time.time()
for _ in range(5):
    y = m(x).sum(); y.backward()
print("threads", torch.get_num_threads(), "%.2f s" % (time.time()-t))
