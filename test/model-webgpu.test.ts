// The WebGPU executor: llama2.c's golden ids, logits against the CPU reference, the paged KV pool, the
// split as a uniform, pipelines built once and one readback per step.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../engine/model/checkpoint.ts';
import { randomWeights } from '../engine/model/random-checkpoint.ts';
import { readStories260KGolden, STORIES260K_PATH } from '../engine/model/shipped.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import { ExecutorInputError, generateGreedy, LOGITS_NMSE_TOLERANCE, type StepInput } from '../engine/executors/model-executor.ts';
import { NO_ADAPTER_HINT, requestAdapter, requestDevice, webGpu } from '../engine/executors/webgpu/device.ts';
import { createWebGpuExecutor, prefillWorkgroups } from '../engine/executors/webgpu/executor.ts';
import { nmse, sameBits } from './model-schedule.ts';

const adapter = await requestAdapter(webGpu());
if (!adapter) console.warn(`[model-webgpu] WebGPU tests skipped: ${NO_ADAPTER_HINT}`);

const stories = loadCheckpoint(STORIES260K_PATH);
const golden = readStories260KGolden();
const gqa = randomWeights({ dim: 48, hiddenDim: 100, nLayers: 3, nHeads: 6, nKvHeads: 2, vocabSize: 80, seqLen: 48, sharedClassifier: false }, 11);

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
  beforeAll(async () => {
    device = await requestDevice(adapter!);
  });
  afterAll(() => {
    device?.destroy();
  });

  it("reproduces llama2.c's 64 golden ids on stories260K, logits within tolerance of the CPU reference", async () => {
    const gpu = await createWebGpuExecutor(stories, { numBlocks: 4, blockSize: 16 }, { device });
    const cpu = createCpuReferenceExecutor(stories, { numBlocks: 4, blockSize: 16 });
    const gpuLogits: Float32Array[] = [];
    const cpuLogits: Float32Array[] = [];
    expect(await generateGreedy(gpu, [1], 64, { onLogits: (_, l) => gpuLogits.push(l) })).toEqual(golden);
    await generateGreedy(cpu, [1], 64, { onLogits: (_, l) => cpuLogits.push(l) });
    expect(gpuLogits).toHaveLength(64);
    const worst = Math.max(...gpuLogits.map((l, i) => nmse(l, cpuLogits[i])));
    expect(worst).toBeLessThan(LOGITS_NMSE_TOLERANCE);
    expect(worst).toBeGreaterThan(0); // different arithmetic (f32 vs f64 sums): equality would mean the check is vacuous
    // Built once, one readback per step (64 steps: one prefill, 63 decodes).
    expect(gpu.stats.pipelinesBuilt).toBe(11);
    expect(gpu.stats.readbacks).toBe(64);
    expect(gpu.stats.steps).toBe(64);
    gpu.destroy();
  });

  it('a mixed prefill + decode batch on a GQA model with its own classifier matches the CPU reference', async () => {
    const pool = { numBlocks: 24, blockSize: 4 };
    const gpu = await createWebGpuExecutor(gqa, pool, { device });
    const cpu = createCpuReferenceExecutor(gqa, pool);
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
    // The pool holds the same K/V (paged the same way) and nothing outside the blocks handed out.
    const [gkv, ckv] = [await gpu.readKvPool(), await cpu.readKvPool()];
    expect(gkv.length).toBe(ckv.length);
    expect(nmse(gkv, ckv)).toBeLessThan(LOGITS_NMSE_TOLERANCE);
    const blockFloats = gkv.length / pool.numBlocks;
    const used = new Set([20, 3, 0, 11, 12, 17, 5]);
    for (let b = 0; b < pool.numBlocks; b++) {
      expect(gkv.subarray(b * blockFloats, (b + 1) * blockFloats).some((v) => v !== 0), `block ${b}`).toBe(used.has(b));
    }
    gpu.destroy();
  });

  it('changing the split changes nothing but the division of workgroups: same bits, nothing rebuilt', async () => {
    const gpu = await createWebGpuExecutor(stories, { numBlocks: 8, blockSize: 16 }, { device, attentionWorkgroups: 8 });
    const step = (share: number): StepInput => ({
      prefill: [{ req: 'p', tokens: [1, 400, 401, 402, 403], startPos: 0, blockTable: [6] }],
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
    expect(gpu.stats.bindGroupBuilds).toBe(built.bindGroupBuilds);
    expect(gpu.stats.weightUploads).toBe(built.weightUploads);
    expect(gpu.stats.readbacks - built.readbacks).toBe(4);
    gpu.destroy();
  });

  it('grows its step buffers for a larger step without rebuilding pipelines, and stays correct', async () => {
    const pool = { numBlocks: 40, blockSize: 4 };
    const gpu = await createWebGpuExecutor(gqa, pool, { device });
    const cpu = createCpuReferenceExecutor(gqa, pool);
    await gpu.step({ prefill: [{ req: 'x', tokens: [1], startPos: 0, blockTable: [0] }], decode: [], prefillShare: 0.5 });
    const before = { ...gpu.stats };
    const big: StepInput = {
      prefill: Array.from({ length: 6 }, (_, i) => ({ req: `r${i}`, tokens: Array.from({ length: 20 }, (_, k) => (i * 13 + k * 7) % 80), startPos: 0, blockTable: [5 * i, 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4] })),
      decode: [],
      prefillShare: 0.7,
      wantLogits: true,
    };
    const [g, c] = [await gpu.step(big), await cpu.step(big)];
    for (const [req, reference] of c.logits!) expect(nmse(g.logits!.get(req)!, reference)).toBeLessThan(LOGITS_NMSE_TOLERANCE);
    expect(gpu.stats.bindGroupBuilds).toBe(before.bindGroupBuilds + 1);
    expect(gpu.stats.pipelinesBuilt).toBe(before.pipelinesBuilt);
    gpu.destroy();
  });

  it('rejects bad options and use after destroy with one-line errors', async () => {
    await expect(createWebGpuExecutor(stories, { numBlocks: 1, blockSize: 16 }, { device, attentionWorkgroups: 1 })).rejects.toThrowError(ExecutorInputError);
    await expect(createWebGpuExecutor(stories, { numBlocks: 0, blockSize: 16 }, { device })).rejects.toThrowError(/numBlocks must be an integer ≥ 1/);
    const gpu = await createWebGpuExecutor(stories, { numBlocks: 1, blockSize: 16 }, { device });
    await expect(gpu.step({ prefill: [], decode: [{ req: 'a', token: 1, pos: 16, blockTable: [0] }], prefillShare: 0.5 })).rejects.toThrowError(/block table has 1 blocks, position 16 needs 2/);
    gpu.destroy();
    await expect(gpu.step({ prefill: [], decode: [{ req: 'a', token: 1, pos: 0, blockTable: [0] }], prefillShare: 0.5 })).rejects.toThrowError(/after destroy/);
  });
});
