// Batch invariance, as properties: whatever the schedule (chunked prefill, batch composition, which
// physical blocks, preemption and recompute, the split changing every step), each request's tokens and
// logits are bit for bit those of the request run alone — on the CPU reference and on WebGPU.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, type ModelWeights } from '../engine/model/checkpoint.ts';
import { randomWeights } from '../engine/model/random-checkpoint.ts';
import { STORIES260K_PATH } from '../engine/model/shipped.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import { LOGITS_NMSE_TOLERANCE, type KvPool, type ModelExecutor } from '../engine/executors/model-executor.ts';
import { NO_ADAPTER_HINT, requestAdapter, requestDevice, webGpu } from '../engine/executors/webgpu/device.ts';
import { createWebGpuExecutor } from '../engine/executors/webgpu/executor.ts';
import {
  blocksFor,
  decisionsArbitrary,
  firstDifference,
  nmse,
  PROPERTY_SEED,
  requestsArbitrary,
  runSchedule,
  runSolo,
  sameBits,
  type SimRequest,
} from './model-schedule.ts';

const adapter = await requestAdapter(webGpu());
if (!adapter) console.warn(`[model-invariance] WebGPU properties skipped: ${NO_ADAPTER_HINT}`);

const stories = loadCheckpoint(STORIES260K_PATH);
const gqa = randomWeights({ dim: 32, hiddenDim: 72, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 64, seqLen: 40, sharedClassifier: false }, 23);
// Up to 4 requests of ≤ 12 + 6 positions, blocks of 4 tokens: 20 blocks at most, pool of 40 to scatter them.
const pool: KvPool = { numBlocks: 40, blockSize: 4 };
const MAX_REQUESTS = 4;
const MAX_PROMPT = 12;
const MAX_NEW = 6;

/** The property: every request's emissions under the random schedule equal its solo run, bit for bit. */
async function scheduleMatchesSolo(executor: ModelExecutor, requests: SimRequest[], decisions: number[]) {
  expect(requests.reduce((n, r) => n + blocksFor(r, pool.blockSize), 0)).toBeLessThanOrEqual(pool.numBlocks);
  const { emissions, log } = await runSchedule(executor, requests, decisions);
  for (const r of requests) {
    const solo = await runSolo(executor, r);
    const diff = firstDifference(emissions.get(r.id)!, solo);
    if (diff) throw new Error(`${executor.name}: request ${r.id} (prompt ${r.prompt.join(',')}): ${diff}; schedule ${JSON.stringify(log)}`);
  }
  return log;
}

/** Runs the property and checks the generated schedules really exercised what the property is about. */
async function checkProperty(executor: ModelExecutor, vocabSize: number, numRuns: number) {
  let preemptions = 0;
  let mixedSteps = 0;
  let splits = new Set<number>();
  await fc.assert(
    fc.asyncProperty(requestsArbitrary(vocabSize, MAX_REQUESTS, MAX_PROMPT, MAX_NEW), decisionsArbitrary, async (requests, decisions) => {
      const log = await scheduleMatchesSolo(executor, requests, decisions);
      preemptions += log.preemptions;
      mixedSteps += log.mixedSteps;
      splits = new Set([...splits, ...log.shares]);
    }),
    { numRuns, seed: PROPERTY_SEED, endOnFailure: true },
  );
  expect(preemptions).toBeGreaterThan(0);
  expect(mixedSteps).toBeGreaterThan(0);
  expect(splits.size).toBeGreaterThan(3);
}

describe('batch invariance on the CPU reference', () => {
  it('property: any schedule gives each request its solo tokens and logits, bit for bit (stories260K)', async () => {
    await checkProperty(createCpuReferenceExecutor(stories, pool), stories.config.vocabSize, 25);
  });

  it('property: the same on a GQA model with a separate classifier', async () => {
    await checkProperty(createCpuReferenceExecutor(gqa, pool), gqa.config.vocabSize, 15);
  });
});

describe.skipIf(!adapter)('batch invariance on WebGPU', () => {
  let device: GPUDevice;
  const executors = new Map<ModelWeights, ModelExecutor>();
  beforeAll(async () => {
    device = await requestDevice(adapter!);
    for (const w of [stories, gqa]) executors.set(w, await createWebGpuExecutor(w, pool, { device, attentionWorkgroups: 6 }));
  });
  afterAll(() => {
    for (const e of executors.values()) e.destroy();
    device?.destroy();
  });

  it('property: any schedule and split gives each request its solo tokens and logits, bit for bit (stories260K)', async () => {
    await checkProperty(executors.get(stories)!, stories.config.vocabSize, 10);
  });

  it('property: the same on a GQA model with a separate classifier', async () => {
    await checkProperty(executors.get(gqa)!, gqa.config.vocabSize, 6);
  });

  it('property: solo WebGPU logits are within tolerance of the CPU reference', async () => {
    const cpu = createCpuReferenceExecutor(gqa, pool);
    await fc.assert(
      fc.asyncProperty(requestsArbitrary(gqa.config.vocabSize, 1, MAX_PROMPT, MAX_NEW), async ([r]) => {
        const [g, c] = [await runSolo(executors.get(gqa)!, r), await runSolo(cpu, r)];
        const n = Math.min(g.length, c.length);
        expect(n).toBeGreaterThan(0);
        // Compared while the greedy paths agree (a near-tie may pick another token and fork the text).
        for (let i = 0; i < n && (i === 0 || g[i - 1].token === c[i - 1].token); i++) {
          expect(nmse(g[i].logits, c[i].logits)).toBeLessThan(LOGITS_NMSE_TOLERANCE);
        }
      }),
      { numRuns: 8, seed: PROPERTY_SEED },
    );
  });

  it('a split change mid-generation (0 → 1 → 0.37 …) leaves every decoded token and logit unchanged', async () => {
    const gpu = executors.get(stories)!;
    const generate = async (shareAt: (step: number) => number) => {
      const prompts = [[1], [1, 300, 301, 302, 303, 304, 305], [1, 77]];
      const tables = [[0, 1, 2, 3], [10, 5, 7, 9], [30, 31, 32, 33]];
      const out = await gpu.step({ prefill: prompts.map((tokens, i) => ({ req: `r${i}`, tokens, startPos: 0, blockTable: tables[i] })), decode: [], prefillShare: shareAt(0), wantLogits: true });
      const logits = [out.logits!];
      let next = out.next;
      for (let s = 1; s < 9; s++) {
        const step = await gpu.step({
          // r2 joins late with a second prefill chunk so prefill and decode tiles share each dispatch.
          prefill: s === 1 ? [{ req: 'late', tokens: [1, 2, 3, 4, 5, 6], startPos: 0, blockTable: [20, 21] }] : s === 2 ? [{ req: 'late', tokens: [7, 8], startPos: 6, blockTable: [20, 21] }] : [],
          decode: prompts.map((p, i) => ({ req: `r${i}`, token: next.get(`r${i}`)!, pos: p.length - 1 + s, blockTable: tables[i] })),
          prefillShare: shareAt(s),
          wantLogits: true,
        });
        next = step.next;
        logits.push(step.logits!);
      }
      return logits;
    };
    const steady = await generate(() => 0.5);
    const switching = await generate((s) => [0, 1, 0.37, 0.05, 0.95, 0.5, 0, 1, 0.2][s]);
    steady.forEach((step, s) => {
      for (const [req, l] of step) expect(sameBits(switching[s].get(req)!, l), `step ${s} ${req}`).toBe(true);
    });
  });
});
