// A measurement recipe for what the kernel tables lack: step latencies at partial SM shares, written as the
// share table that `npm run calibrate -- --shares FILE` fits the share curves from (bench/calibration/shares.ts).
//
//   npx tsx bench/measure-shares.ts [--out FILE] [--shares 25,50,75,100] [--prompt 256] [--batch 16]
//                                   [--context 256] [--reps 5] [--dim 256] [--layers 4] [--workgroups 64] [--stories]
//
// On any GPU with WebGPU (or lavapipe, for a check that the recipe runs): a prefill of --prompt tokens alone
// with the fused attention dispatch limited to share·workgroups, and a decode batch alone with the decode
// tiles limited the same way (the executor's workgroup split, StepInput.prefillShare). Only the attention
// dispatch is split; the dense matmuls always use the whole device, so this measures how attention scales
// with its share, not a whole process confined to part of the GPU.
//
// A CUDA user measures the real thing and writes the same table (phase,share_percent,tokens,context,seconds):
//   - MPS: start the MPS daemon (nvidia-cuda-mps-control -d), run the serving engine's prefill-only and
//     decode-only steps in a process started with CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=<share>, and record the
//     median step latency at each share, 100 included (semi-PD's setting);
//   - green contexts (CUDA 12.4+): split the device's SMs with cuDevSmResourceSplitByCount, create a context
//     with cuGreenCtxCreate on the partition of the share wanted, and time the same steps in a stream of that
//     context (Nexus's setting).
// Time each step with CUDA events around the forward pass only, after a warm-up, median of several runs.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadCheckpoint, type ModelWeights } from '../engine/model/checkpoint.ts';
import { randomWeights } from '../engine/model/random-checkpoint.ts';
import { STORIES260K_PATH } from '../engine/model/shipped.ts';
import type { KvPool, ModelExecutor, StepInput } from '../engine/executors/model-executor.ts';
import { describeAdapter, requestAdapter, webGpu } from '../engine/executors/webgpu/device.ts';
import { createWebGpuExecutor } from '../engine/executors/webgpu/executor.ts';
import { formatShareTable, type ShareRow } from './calibration/shares.ts';

function fail(message: string): never {
  console.error(`measure-shares: ${message}`);
  process.exit(2);
}

let values: Record<string, string | boolean | undefined>;
try {
  values = parseArgs({
    options: {
      out: { type: 'string' },
      shares: { type: 'string', default: '25,50,75,100' },
      prompt: { type: 'string', default: '256' },
      batch: { type: 'string', default: '16' },
      context: { type: 'string', default: '256' },
      reps: { type: 'string', default: '5' },
      dim: { type: 'string', default: '256' },
      layers: { type: 'string', default: '4' },
      workgroups: { type: 'string', default: '64' },
      seed: { type: 'string', default: '7' },
      stories: { type: 'boolean', default: false },
    },
  }).values;
} catch (err) {
  fail((err as Error).message);
}

function int(name: string, min: number): number {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}, got '${values[name]}'`);
  return n;
}
const shares = String(values.shares)
  .split(',')
  .map((s) => Number(s.trim()));
if (shares.some((s) => !(s > 0 && s <= 100))) fail(`--shares must be percentages in (0, 100], got '${values.shares}'`);
if (!shares.includes(100)) shares.push(100); // the fit reads slowdowns against the whole device
const prompt = int('prompt', 1);
const batch = int('batch', 1);
const context = int('context', 1);
const reps = int('reps', 1);
const workgroups = int('workgroups', 2);

const weights: ModelWeights = values.stories
  ? loadCheckpoint(STORIES260K_PATH)
  : randomWeights({ dim: int('dim', 16), hiddenDim: Math.round((int('dim', 16) * 8) / 3 / 4) * 4, nLayers: int('layers', 1), nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: Math.max(prompt, context + 1) + 1 }, int('seed', 0));
const m = weights.config;
if (prompt > m.seqLen || context + 1 > m.seqLen) fail(`--prompt and --context + 1 must be ≤ the model's seq_len ${m.seqLen}`);

const blockSize = 16;
const blocksPer = Math.ceil(Math.max(prompt, context + 1) / blockSize);
const pool: KvPool = { numBlocks: (batch + 1) * blocksPer, blockSize };
const table = (r: number) => Array.from({ length: blocksPer }, (_, i) => r * blocksPer + i);
const ids = (r: number, n: number) => Array.from({ length: n }, (_, i) => (r * 31 + i * 7 + 1) % m.vocabSize);

/** Median wall seconds of `reps` runs of one step, after one warm-up run. */
async function median(executor: ModelExecutor, input: StepInput): Promise<number> {
  await executor.step(input);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await executor.step(input);
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

const adapter = await requestAdapter(webGpu());
if (!adapter) {
  console.error('measure-shares: no WebGPU adapter: run `node bin/pdspec.js doctor` for how to get one');
  process.exit(1);
}
const executor = await createWebGpuExecutor(weights, pool, { attentionWorkgroups: workgroups });
const rows: ShareRow[] = [];
// Decode requests 1..batch: their contexts are prefilled once (untimed); request 0 is the timed prefill.
await executor.step({ prefill: Array.from({ length: batch }, (_, r) => ({ req: `d${r}`, tokens: ids(r + 1, context), startPos: 0, blockTable: table(r + 1) })), decode: [], prefillShare: 1 });
for (const share of shares) {
  const prefill: StepInput = { prefill: [{ req: 'p', tokens: ids(0, prompt), startPos: 0, blockTable: table(0) }], decode: [], prefillShare: share / 100 };
  rows.push({ phase: 'prefill', share, tokens: prompt, context: 0, seconds: await median(executor, prefill) });
  // The decode tiles get the workgroups the split leaves them: 1 − prefillShare of the dispatch.
  const decode: StepInput = { prefill: [], decode: Array.from({ length: batch }, (_, r) => ({ req: `d${r}`, token: 1, pos: context, blockTable: table(r + 1) })), prefillShare: 1 - share / 100 };
  rows.push({ phase: 'decode', share, tokens: batch, context, seconds: await median(executor, decode) });
}
executor.destroy();

const text = formatShareTable(
  rows,
  `measured by bench/measure-shares.ts on ${describeAdapter(adapter).description}; model ${values.stories ? 'stories260K' : `random dim ${m.dim}, ${m.nLayers} layers`}; attention workgroups ${workgroups}; median of ${reps} runs (wall time of a step)`,
);
if (typeof values.out === 'string') {
  writeFileSync(values.out, text);
  console.log(`wrote ${rows.length} rows to ${values.out}`);
} else {
  process.stdout.write(text);
}
