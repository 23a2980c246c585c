// ort_run.js - ONNX Runtime (onnxruntime-node, CPU) on one ONNX model, for
// bench/peers_bench.py: every graph optimization on, `threads` intra-op
// threads and 1 inter-op, as a user tunes it for CPU inference.
//   node ort_run.js MODEL.onnx INPUT.bin N C T H W threads warmup runs [OUT.bin]
// INPUT.bin: raw float32 N x C x T x H x W.  Prints one line of JSON:
// {"clips_per_s": median over the timed runs, "times": [...]}; with OUT.bin
// also writes the first run's logits there (raw float32).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

async function main() {
  const a = process.argv.slice(2);
  if (a.length < 10) {
    console.error('usage: node ort_run.js MODEL.onnx INPUT.bin N C T H W threads warmup runs [OUT.bin]');
    process.exit(2);
  }
  const [model, input] = a;
  const dims = a.slice(2, 7).map(Number);
  const [threads, warmup, runs] = a.slice(7, 10).map(Number);
  const out = a[10];
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const buf = fs.readFileSync(input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, dims)};
  let first = null;
  for (let i = 0; i < warmup; i++) {
    const r = await session.run(feeds);
    if (!first) first = r[session.outputNames[0]].data;
  }
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    if (!first) first = r[session.outputNames[0]].data;
  }
  if (out) fs.writeFileSync(out, Buffer.from(first.buffer, first.byteOffset, first.byteLength));
  const sorted = [...times].sort((x, y) => x - y);
  const med = sorted[Math.floor(sorted.length / 2)];
  console.log(JSON.stringify({clips_per_s: dims[0] / med, times}));
}

main().catch((e) => {
  console.error('ort_run: ' + e.message);
  process.exit(1);
});
