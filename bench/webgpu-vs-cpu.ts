// WebGPU executor vs the CPU reference on a decode-heavy batch, measured in the same run.
//
//   npx tsx bench/webgpu-vs-cpu.ts [--batch 32] [--prompt 32] [--steps 16] [--dim 256] [--layers 4] [--stories]
//
// Both executors get the same seeded random llama2.c checkpoint (or stories260K with --stories), prefill
// `batch` prompts (untimed), then run `steps` decode steps of the whole batch (timed). Prints tokens/s of
// each, the ratio, agreement of their tokens and logits, the bytes of weights and KV one decode step must
// read (the memory-bandwidth floor a real GPU's decode time can be held against), and a per-kernel
// breakdown of one profiled WebGPU decode step (timestamp queries).
import { parseArgs } from 'node:util';
import { loadCheckpoint, parameterCount, type ModelWeights } from '../engine/model/checkpoint.ts';
import { randomWeights, type RandomModelShape } from '../engine/model/random-checkpoint.ts';
import { STORIES260K_PATH } from '../engine/model/shipped.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import { LOGITS_NMSE_TOLERANCE, type KvPool, type ModelExecutor, type StepOutput } from '../engine/executors/model-executor.ts';
import { describeAdapter, requestAdapter, webGpu } from '../engine/executors/webgpu/device.ts';
import { createWebGpuExecutor } from '../engine/executors/webgpu/executor.ts';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '32' },
    prompt: { type: 'string', default: '32' },
    steps: { type: 'string', default: '16' },
    dim: { type: 'string', default: '256' },
    layers: { type: 'string', default: '4' },
    seed: { type: 'string', default: '7' },
    stories: { type: 'boolean', default: false },
  },
});
const batch = Number(values.batch);
const promptLength = Number(values.prompt);
const steps = Number(values.steps);
const blockSize = 16;

let weights: ModelWeights;
let modelName: string;
if (values.stories) {
  weights = loadCheckpoint(STORIES260K_PATH);
  modelName = 'stories260K (data/llama2c-stories260K)';
} else {
  const dim = Number(values.dim);
  const shape: RandomModelShape = { dim, hiddenDim: Math.round((dim * 8) / 3 / 4) * 4, nLayers: Number(values.layers), nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 };
  weights = randomWeights(shape, Number(values.seed));
  modelName = `random llama2.c checkpoint seed ${values.seed} ${JSON.stringify(shape)}`;
}
const m = weights.config;
if (promptLength + steps > m.seqLen) throw new Error(`--prompt + --steps must be ≤ seq_len ${m.seqLen}`);
const blocksPerRequest = Math.ceil((promptLength + steps) / blockSize);
const pool: KvPool = { numBlocks: batch * blocksPerRequest, blockSize };
// Requests take interleaved physical blocks (request r, logical block i → block i*batch + r).
const tables = Array.from({ length: batch }, (_, r) => Array.from({ length: blocksPerRequest }, (_, i) => i * batch + r));
const prompts = Array.from({ length: batch }, (_, r) => Array.from({ length: promptLength }, (_, i) => (r * 31 + i * 7 + 1) % m.vocabSize));

interface Run {
  tokensPerSecond: number;
  tokens: number[][];
  lastLogits: Map<string, Float32Array>;
}

async function decodeBatch(executor: ModelExecutor): Promise<Run> {
  let out: StepOutput = await executor.step({
    prefill: prompts.map((tokens, r) => ({ req: `r${r}`, tokens, startPos: 0, blockTable: tables[r] })),
    decode: [],
    prefillShare: 0.5,
  });
  const tokens = prompts.map((_, r) => [out.next.get(`r${r}`)!]);
  const started = performance.now();
  for (let s = 0; s < steps; s++) {
    out = await executor.step({
      prefill: [],
      decode: tokens.map((t, r) => ({ req: `r${r}`, token: t[t.length - 1], pos: promptLength + s, blockTable: tables[r] })),
      prefillShare: 0.5,
      wantLogits: s === steps - 1,
    });
    tokens.forEach((t, r) => t.push(out.next.get(`r${r}`)!));
  }
  const seconds = (performance.now() - started) / 1000;
  return { tokensPerSecond: (batch * steps) / seconds, tokens, lastLogits: out.logits! };
}

const adapter = await requestAdapter(webGpu());
if (!adapter) {
  console.log('no WebGPU adapter: run `node bin/pdspec.js doctor` for how to get one');
  process.exit(1);
}
console.log(`model: ${modelName}, ${(parameterCount(m) / 1e6).toFixed(2)}M parameters`);
console.log(`adapter: ${describeAdapter(adapter).description}`);
console.log(`workload: ${batch} requests, prompt ${promptLength} tokens (prefill, untimed), then ${steps} decode steps of the whole batch; KV blocks of ${blockSize}`);

const gpu = await createWebGpuExecutor(weights, pool);
await decodeBatch(gpu); // warm-up: JIT-compiles the kernels (llvmpipe) and sizes the step buffers
const gpuRun = await decodeBatch(gpu);
const weightBytes = gpu.weightBytes;
gpu.destroy();
const cpu = createCpuReferenceExecutor(weights, pool);
const cpuRun = await decodeBatch(cpu);
cpu.destroy();

let worst = 0;
for (const [req, reference] of cpuRun.lastLogits) {
  const g = gpuRun.lastLogits.get(req)!;
  let num = 0;
  let den = 0;
  for (let i = 0; i < reference.length; i++) {
    num += (g[i] - reference[i]) ** 2;
    den += reference[i] ** 2;
  }
  worst = Math.max(worst, num / den);
}
const sameTokens = gpuRun.tokens.filter((t, r) => t.join() === cpuRun.tokens[r].join()).length;

console.log(`cpu reference: ${cpuRun.tokensPerSecond.toFixed(1)} tokens/s`);
console.log(`webgpu:        ${gpuRun.tokensPerSecond.toFixed(1)} tokens/s`);
console.log(`ratio webgpu/cpu: ${(gpuRun.tokensPerSecond / cpuRun.tokensPerSecond).toFixed(2)}x`);
console.log(
  `agreement: ${sameTokens}/${batch} requests with identical tokens; worst logits NMSE at the last step ${worst.toExponential(2)} (tolerance ${LOGITS_NMSE_TOLERANCE})`,
);

// What one decode step of the batch has to read, at the least: every weight once (the embedding only
// for the batch's rows unless it is also the classifier), and each request's K and V for positions
// 0..pos once (the kernel reads each KV head once per query head of its group: kvMul times this).
const lastPos = promptLength + steps - 1;
const kvPerPosition = m.nLayers * 2 * m.kvDim * 4;
const kvReadBytes = batch * (lastPos + 1) * kvPerPosition;
const kvWriteBytes = batch * kvPerPosition;
const embeddingBytes = m.vocabSize * m.dim * 4;
const weightsReadBytes = m.sharedClassifier ? weightBytes : weightBytes - embeddingBytes + batch * m.dim * 4;
console.log(
  `bytes per decode step (last step, positions 0..${lastPos}): weights ${weightsReadBytes} read, KV ${kvReadBytes} read (x${m.kvMul} as the kernel reads it) + ${kvWriteBytes} written`,
);
for (const [name, bandwidth] of [
  ['H100 SXM, 3.35 TB/s', 3.35e12],
  ['H200, 4.8 TB/s', 4.8e12],
] as const) {
  console.log(`  floor at ${name}: weights ${((weightsReadBytes / bandwidth) * 1e6).toFixed(2)} us, decode attention ${((kvReadBytes / bandwidth) * 1e6).toFixed(2)} us`);
}

// One profiled decode step (one pass per dispatch, so slower than the timed runs).
if (adapter.features.has('timestamp-query')) {
  const profiled = await createWebGpuExecutor(weights, pool, { profile: true });
  await decodeBatch(profiled);
  const profile = profiled.lastProfile!;
  profiled.destroy();
  const total = [...profile.values()].reduce((a, b) => a + b, 0);
  const parts = [...profile].sort((a, b) => b[1] - a[1]).map(([k, ns]) => `${k} ${(ns / 1e6).toFixed(2)} ms`);
  console.log(`profiled decode step (GPU timestamps, ${(total / 1e6).toFixed(2)} ms in kernels): ${parts.join(', ')}`);
}
