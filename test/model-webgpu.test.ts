// The WebGPU executor: llama2.c's golden ids, logits against the CPU reference, the paged KV pool, the
// split as a uniform, pipelines built once, one readback per step, and batch invariance as properties.
// One device and two kernel shapes (stories260K and a GQA model, blocks of 4) for the whole file:
// llvmpipe JIT-compiles each new shape, which costs seconds on a cold shader cache.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, type ModelWeights } from '../engine/model/checkpoint.ts';
import { readStories260KGolden, STORIES260K_PATH } from '../engine/model/shipped.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import { ExecutorInputError, generateGreedy, LOGITS_NMSE_TOLERANCE, type StepInput } from '../engine/executors/model-executor.ts';
import { NO_ADAPTER_HINT, requestAdapter, requestDevice, webGpu } from '../engine/executors/webgpu/device.ts';
import { createWebGpuExecutor, prefillWorkgroups, type WebGpuExecutor, type WebGpuExecutorOptions } from '../engine/executors/webgpu/executor.ts';
import { checkScheduleInvariance, gqaModel, nmse, PROPERTY_SEED, runSolo, sameBits, singleRequestArbitrary, testPool } from './model-schedule.ts';

const adapter = await requestAdapter(webGpu());
if (!adapter) console.warn(`[model-webgpu] WebGPU tests skipped: ${NO_ADAPTER_HINT}`);

const stories = loadCheckpoint(STORIES260K_PATH);
const golden = readStories260KGolden();

describe('prefillWorkgroups (the split as a workgroup count)', () => {
  it('rounds share·G and leaves each phase that has tiles at least one workgroup', () => {
    expect(prefillWorkgroups(0.5, 64, true, true)).toBe(32);
    expect(prefillWorkgroups(0, 64, true, true)).toBe(1);
    expect(prefillWorkgroups(1, 64, true, true)).toBe(63);
    expect(prefillWorkgroups(1, 64, false, true)).toBe(63);
    expect(prefillWorkgroups(0, 64, false, true)).toBe(0);
    expect(prefillWorkgroups(1, 64, true, false)).toBe(64);
    expect(prefillWorkgroups(0.3, 10, true, true)).toBe(3);
  });
});

describe.skipIf(!adapter)('WebGPU executor', () => {
  let device: GPUDevice;
  const live: WebGpuExecutor[] = [];
  const make = async (weights: ModelWeights, options: WebGpuExecutorOptions = {}) => {
    const executor = await createWebGpuExecutor(weights, testPool, { device, ...options });
    live.push(executor);
    return executor;
  };
  beforeAll(async () => {
    device = await requestDevice(adapter!);
  });
  afterAll(() => {
    for (const e of live) e.destroy();
    device?.destroy();
  });

  it("reproduces llama2.c's 64 golden ids on stories260K, logits within tolerance of the CPU reference", async () => {
    const gpu = await make(stories);
    const cpu = createCpuReferenceExecutor(stories, testPool);
    const gpuLogits: Float32Array[] = [];
    const cpuLogits: Float32Array[] = [];
    expect(await generateGreedy(gpu, [1], 64, { onLogits: (_, l) => gpuLogits.push(l) })).toEqual(golden);
    await generateGreedy(cpu, [1], 64, { onLogits: (_, l) => cpuLogits.push(l) });
    expect(gpuLogits).toHaveLength(64);
    const worst = Math.max(...gpuLogits.map((l, i) => nmse(l, cpuLogits[i])));
    expect(worst).toBeLessThan(LOGITS_NMSE_TOLERANCE);
    expect(worst).toBeGreaterThan(0); // float32 vs float64 sums: equality would mean the comparison is vacuous
    // Eleven pipelines, taken once at creation; one readback per step (64 steps: one prefill, 63 decodes).
    expect(gpu.stats.pipelinesUsed).toBe(11);
    expect(gpu.stats.readbacks).toBe(64);
    expect(gpu.stats.steps).toBe(64);
  });

  it('a mixed prefill + decode batch on a GQA model with its own classifier matches the CPU reference, paged the same way', async () => {
    const gpu = await make(gqaModel);
    const cpu = createCpuReferenceExecutor(gqaModel, testPool);
    const steps: StepInput[] = [
      { prefill: [{ req: 'a', tokens: [3, 1, 4, 1, 5, 9, 2], startPos: 0, blockTable: [20, 3] }, { req: 'b', tokens: [2, 7], startPos: 0, blockTable: [0] }], decode: [], prefillShare: 0.5, wantLogits: true },
      {
        prefill: [{ req: 'c', tokens: [6, 6, 6, 6, 6], startPos: 0, blockTable: [11, 12] }, { req: 'b', tokens: [1, 8, 2, 8], startPos: 2, blockTable: [0, 17] }],
        decode: [{ req: 'a', token: 10, pos: 7, blockTable: [20, 3] }],
        prefillShare: 0.25,
        wantLogits: true,
      },
      { prefill: [], decode: [{ req: 'a', token: 11, pos: 8, blockTable: [20, 3, 5] }, { req: 'c', token: 12, pos: 5, blockTable: [11, 12] }], prefillShare: 0.9, wantLogits: true },
    ];
    for (const input of steps) {
      const [g, c] = [await gpu.step(input), await cpu.step(input)];
      for (const [req, reference] of c.logits!) expect(nmse(g.logits!.get(req)!, reference), `request ${req}`).toBeLessThan(LOGITS_NMSE_TOLERANCE);
    }
    // The pool holds the same K/V at the same places, and nothing outside the blocks handed out.
    const [gkv, ckv] = [await gpu.readKvPool(), await cpu.readKvPool()];
    expect(gkv.length).toBe(ckv.length);
    expect(nmse(gkv, ckv)).toBeLessThan(LOGITS_NMSE_TOLERANCE);
    const blockFloats = gkv.length / testPool.numBlocks;
    const used = new Set([20, 3, 0, 11, 12, 17, 5]);
    for (let b = 0; b < testPool.numBlocks; b++) {
      expect(gkv.subarray(b * blockFloats, (b + 1) * blockFloats).some((v) => v !== 0), `block ${b}`).toBe(used.has(b));
    }
  });

  it('changing the split changes nothing but the division of workgroups: same bits, nothing rebuilt', async () => {
    const gpu = await make(stories, { attentionWorkgroups: 8 });
    const step = (share: number): StepInput => ({
      prefill: [{ req: 'p', tokens: [1, 400, 401, 402, 403], startPos: 0, blockTable: [6, 7] }],
      decode: [{ req: 'd', token: 461, pos: 3, blockTable: [2] }],
      prefillShare: share,
      wantLogits: true,
    });
    await gpu.step({ prefill: [{ req: 'd', tokens: [1, 461, 461], startPos: 0, blockTable: [2] }], decode: [], prefillShare: 0.5 });
    const reference = await gpu.step(step(0.5));
    const built = { ...gpu.stats };
    for (const share of [0, 0.125, 0.9, 1]) {
      const out = await gpu.step(step(share));
      for (const req of ['p', 'd']) expect(sameBits(out.logits!.get(req)!, reference.logits!.get(req)!), `${req} at share ${share}`).toBe(true);
    }
    expect(gpu.stats.pipelinesBuilt).toBe(built.pipelinesBuilt);
    expect(gpu.stats.pipelinesUsed).toBe(built.pipelinesUsed);
    expect(gpu.stats.bindGroupBuilds).toBe(built.bindGroupBuilds);
    expect(gpu.stats.weightUploads).toBe(built.weightUploads);
    expect(gpu.stats.readbacks - built.readbacks).toBe(4);
  });

  it('a split change mid-generation (0 → 1 → 0.37 …) leaves every token and logit unchanged', async () => {
    const gpu = await make(stories, { attentionWorkgroups: 6 });
    const generate = async (shareAt: (step: number) => number) => {
      const prompts = [[1], [1, 300, 301, 302, 303, 304, 305], [1, 77]];
      const tables = [[0, 1, 2, 3], [10, 5, 7, 9], [30, 31, 32, 33]];
      const out = await gpu.step({ prefill: prompts.map((tokens, i) => ({ req: `r${i}`, tokens, startPos: 0, blockTable: tables[i] })), decode: [], prefillShare: shareAt(0), wantLogits: true });
      const logits = [out.logits!];
      let next = out.next;
      for (let s = 1; s < 9; s++) {
        const step = await gpu.step({
          // A late request prefills in two chunks while the others decode: both phases share the dispatch.
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

  it('property: any schedule and split gives each request its solo tokens and logits, bit for bit (stories260K)', async () => {
    await checkScheduleInvariance(await make(stories, { attentionWorkgroups: 6 }), 10);
  });

  it('property: the same on a GQA model with a separate classifier', async () => {
    await checkScheduleInvariance(await make(gqaModel, { attentionWorkgroups: 6 }), 6);
  });

  it('property: WebGPU logits stay within tolerance of the CPU reference along a greedy run', async () => {
    const gpu = await make(gqaModel);
    const cpu = createCpuReferenceExecutor(gqaModel, testPool);
    await fc.assert(
      fc.asyncProperty(singleRequestArbitrary(gqaModel.config.vocabSize), async (r) => {
        const [g, c] = [await runSolo(gpu, r), await runSolo(cpu, r)];
        expect(Math.min(g.length, c.length)).toBeGreaterThan(0);
        // Compared while the greedy paths agree (a near-tie may pick another token and fork the text).
        for (let i = 0; i < Math.min(g.length, c.length) && (i === 0 || g[i - 1].token === c[i - 1].token); i++) {
          expect(nmse(g[i].logits, c[i].logits)).toBeLessThan(LOGITS_NMSE_TOLERANCE);
        }
      }),
      { numRuns: 8, seed: PROPERTY_SEED },
    );
  });

  it('grows its step buffers for a larger step without rebuilding pipelines, and stays correct', async () => {
    const gpu = await make(gqaModel);
    const cpu = createCpuReferenceExecutor(gqaModel, testPool);
    await gpu.step({ prefill: [{ req: 'x', tokens: [1], startPos: 0, blockTable: [0] }], decode: [], prefillShare: 0.5 });
    const before = { ...gpu.stats };
    const big: StepInput = {
      prefill: Array.from({ length: 6 }, (_, i) => ({ req: `r${i}`, tokens: Array.from({ length: 20 }, (_, k) => (i * 13 + k * 7) % 64), startPos: 0, blockTable: [5 * i, 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4] })),
      decode: [],
      prefillShare: 0.7,
      wantLogits: true,
    };
    const [g, c] = [await gpu.step(big), await cpu.step(big)];
    for (const [req, reference] of c.logits!) expect(nmse(g.logits!.get(req)!, reference)).toBeLessThan(LOGITS_NMSE_TOLERANCE);
    expect(gpu.stats.bindGroupBuilds).toBe(before.bindGroupBuilds + 1);
    expect(gpu.stats.pipelinesUsed).toBe(before.pipelinesUsed);
  });

  it('the attention lane count changes speed only, never a bit of the output', async () => {
    const eight = await make(gqaModel, { attentionLanes: 8 });
    const wide = await make(gqaModel, { attentionLanes: 32 });
    const input: StepInput = {
      prefill: [{ req: 'p', tokens: Array.from({ length: 40 }, (_, i) => (i * 5) % 64), startPos: 0, blockTable: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0] }],
      decode: [],
      prefillShare: 0.5,
      wantLogits: true,
    };
    const [a, b] = [await eight.step(input), await wide.step(input)];
    expect(sameBits(a.logits!.get('p')!, b.logits!.get('p')!)).toBe(true);
  });

  it('attention over several online-softmax chunks (150 positions) matches the CPU reference, bit-identical across lanes and chunking', async () => {
    const tokens = Array.from({ length: 150 }, (_, i) => (i < 64 ? [1, ...golden][i] : (i * 37) % 512));
    const table = Array.from({ length: 38 }, (_, i) => 37 - i);
    const lastLogits = async (executor: { step(input: StepInput): Promise<{ logits?: Map<string, Float32Array> }> }, cuts: number[]) => {
      let out;
      for (let i = 0; i + 1 < cuts.length; i++) {
        out = await executor.step({ prefill: [{ req: 'x', tokens: tokens.slice(cuts[i], cuts[i + 1]), startPos: cuts[i], blockTable: table }], decode: [], prefillShare: 0.5, wantLogits: true });
      }
      return out!.logits!.get('x')!;
    };
    const eight = await make(stories, { attentionLanes: 8 });
    const wide = await make(stories, { attentionLanes: 32 });
    const whole = await lastLogits(eight, [0, 150]);
    const chunked = await lastLogits(wide, [0, 50, 63, 64, 65, 128, 149, 150]);
    const cpu = await lastLogits(createCpuReferenceExecutor(stories, testPool), [0, 150]);
    expect(sameBits(chunked, whole)).toBe(true);
    expect(nmse(whole, cpu)).toBeLessThan(LOGITS_NMSE_TOLERANCE);
  });

  it('executors of one shape on one device share their pipelines (the second compiles nothing)', async () => {
    const first = await make(gqaModel, { attentionWorkgroups: 3 });
    const second = await make(gqaModel, { attentionWorkgroups: 5 });
    expect(first.stats.pipelinesUsed).toBe(11);
    expect(second.stats.pipelinesUsed).toBe(11);
    expect(second.stats.pipelinesBuilt).toBe(0);
  });

  it('rejects bad options, bad steps and use after destroy with one-line errors', async () => {
    await expect(createWebGpuExecutor(stories, testPool, { device, attentionWorkgroups: 1 })).rejects.toThrowError(ExecutorInputError);
    await expect(createWebGpuExecutor(stories, { numBlocks: 0, blockSize: 4 }, { device })).rejects.toThrowError(/numBlocks must be an integer ≥ 1/);
    const gpu = await createWebGpuExecutor(stories, testPool, { device });
    expect((await gpu.step({ prefill: [], decode: [], prefillShare: 0.5, wantLogits: true })).next.size).toBe(0);
    await expect(gpu.step({ prefill: [], decode: [{ req: 'a', token: 1, pos: 4, blockTable: [0] }], prefillShare: 0.5 })).rejects.toThrowError(/block table has 1 blocks, position 4 needs 2/);
    gpu.destroy();
    await expect(gpu.step({ prefill: [], decode: [{ req: 'a', token: 1, pos: 0, blockTable: [0] }], prefillShare: 0.5 })).rejects.toThrowError(/after destroy/);
  });
});
