// The CPU reference executor: llama2.c's golden ids, run.c's loop, the paged KV pool, step validation.
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../engine/model/checkpoint.ts';
import { randomWeights } from '../engine/model/random-checkpoint.ts';
import { readStories260KGolden, STORIES260K_PATH } from '../engine/model/shipped.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import {
  ExecutorInputError,
  generateGreedy,
  kvOffset,
  type KvPool,
  type ModelConfig,
  type ModelExecutor,
  type StepInput,
  type StepOutput,
} from '../engine/executors/model-executor.ts';
import { sameBits } from './model-schedule.ts';

const stories = loadCheckpoint(STORIES260K_PATH);
const golden = readStories260KGolden();

describe("CPU reference reproduces llama2.c's greedy output on stories260K", () => {
  it('BOS with 64 steps gives the 64 golden ids, token for token', async () => {
    const cpu = createCpuReferenceExecutor(stories, { numBlocks: 4, blockSize: 16 });
    expect(await generateGreedy(cpu, [1], 64)).toEqual(golden);
  });

  it("lines up with run.c's step count: the golden prefix as a prompt continues the golden ids", async () => {
    const cpu = createCpuReferenceExecutor(stories, { numBlocks: 8, blockSize: 8 });
    // Prompt [1, g0..g(k-1)] and steps 64 run the same positions 0..63: ids k..63 of the golden file.
    for (const k of [1, 5, 20]) {
      expect(await generateGreedy(cpu, [1, ...golden.slice(0, k)], 64)).toEqual(golden.slice(k));
    }
    // Fewer steps: a prefix. Steps smaller than the prompt: nothing generated, as run.c.
    expect(await generateGreedy(cpu, [1], 10)).toEqual(golden.slice(0, 10));
    expect(await generateGreedy(cpu, [1, 2, 3], 2)).toEqual([]);
  });

  it('gives the same ids and bitwise-equal logits with any block size and scrambled physical blocks', async () => {
    const record = async (pool: KvPool, blockTable?: number[]) => {
      const cpu = createCpuReferenceExecutor(stories, pool);
      const logits: Float32Array[] = [];
      const ids = await generateGreedy(cpu, [1], 40, { blockTable, onLogits: (_, l) => logits.push(l) });
      return { ids, logits };
    };
    const base = await record({ numBlocks: 3, blockSize: 16 });
    expect(base.ids).toEqual(golden.slice(0, 40));
    const scrambled = await record({ numBlocks: 64, blockSize: 3 }, [50, 7, 63, 0, 12, 33, 2, 41, 9, 18, 27, 36, 45, 54]);
    expect(scrambled.ids).toEqual(base.ids);
    base.logits.forEach((l, i) => expect(sameBits(scrambled.logits[i], l), `logits at position ${i}`).toBe(true));
  });

  it('writes K/V only into the blocks of the block table, at kvOffset', async () => {
    const pool = { numBlocks: 10, blockSize: 4 };
    const cpu = createCpuReferenceExecutor(stories, pool);
    const table = [7, 2, 9];
    await cpu.step({ prefill: [{ req: 'a', tokens: [1, 461, 461, 401, 401, 401, 461, 378, 455, 473], startPos: 0, blockTable: table }], decode: [], prefillShare: 0.5 });
    const kv = await cpu.readKvPool();
    const m = stories.config;
    const blockFloats = m.nLayers * 2 * pool.blockSize * m.kvDim;
    for (let b = 0; b < pool.numBlocks; b++) {
      const block = kv.subarray(b * blockFloats, (b + 1) * blockFloats);
      const used = block.some((v) => v !== 0);
      expect(used, `block ${b}`).toBe(table.includes(b));
    }
    // Position 9 is slot 1 of logical block 2 (physical 9); slot 2 of that block is still empty.
    const written = kv.subarray(kvOffset(m, pool, 9, 0, 0, 1), kvOffset(m, pool, 9, 0, 0, 1) + m.kvDim);
    const empty = kv.subarray(kvOffset(m, pool, 9, 0, 0, 2), kvOffset(m, pool, 9, 0, 0, 2) + m.kvDim);
    expect(written.some((v) => v !== 0)).toBe(true);
    expect(empty.every((v) => v === 0)).toBe(true);
  });

  it('a block-ownership bug (a block in two requests) shows up as wrong tokens', async () => {
    const pool = { numBlocks: 8, blockSize: 8 };
    const solo = createCpuReferenceExecutor(stories, pool);
    const alone = await generateGreedy(solo, [1], 24);
    // Request b is given a's first block once a has filled it: b's prefill overwrites a's K/V of positions 0..7.
    const cpu = createCpuReferenceExecutor(stories, pool);
    let out = await cpu.step({ prefill: [{ req: 'a', tokens: [1], startPos: 0, blockTable: [0, 1, 2] }], decode: [], prefillShare: 0.5 });
    const ids = [out.next.get('a')!];
    for (let pos = 1; pos < 24; pos++) {
      if (pos === 12) await cpu.step({ prefill: [{ req: 'b', tokens: [5, 300, 301, 302, 303, 304, 305, 306], startPos: 0, blockTable: [0] }], decode: [], prefillShare: 0.5 });
      out = await cpu.step({ prefill: [], decode: [{ req: 'a', token: ids[ids.length - 1], pos, blockTable: [0, 1, 2] }], prefillShare: 0.5 });
      ids.push(out.next.get('a')!);
    }
    expect(ids.slice(0, 12)).toEqual(alone.slice(0, 12));
    expect(alone).toEqual(golden.slice(0, 24));
    expect(ids).not.toEqual(alone);
  });

  it('computes each request as if alone in a mixed prefill + decode batch', async () => {
    const m = randomWeights({ dim: 24, hiddenDim: 40, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 50, seqLen: 32, sharedClassifier: false }, 5);
    const pool = { numBlocks: 16, blockSize: 4 };
    const oneByOne = createCpuReferenceExecutor(m, pool);
    const a1 = await oneByOne.step({ prefill: [{ req: 'a', tokens: [3, 4, 5, 6, 7], startPos: 0, blockTable: [0, 1] }], decode: [], prefillShare: 0.5, wantLogits: true });
    const b1 = await oneByOne.step({ prefill: [{ req: 'b', tokens: [9, 8], startPos: 0, blockTable: [2] }], decode: [], prefillShare: 0.5 });
    const b2 = await oneByOne.step({ prefill: [], decode: [{ req: 'b', token: b1.next.get('b')!, pos: 2, blockTable: [2] }], prefillShare: 0.5, wantLogits: true });
    const batched = createCpuReferenceExecutor(m, pool);
    await batched.step({ prefill: [{ req: 'b', tokens: [9, 8], startPos: 0, blockTable: [5] }], decode: [], prefillShare: 0.5 });
    const both = await batched.step({
      prefill: [{ req: 'a', tokens: [3, 4, 5, 6, 7], startPos: 0, blockTable: [9, 3] }],
      decode: [{ req: 'b', token: b1.next.get('b')!, pos: 2, blockTable: [5] }],
      prefillShare: 0.3,
      wantLogits: true,
    });
    expect(sameBits(both.logits!.get('a')!, a1.logits!.get('a')!)).toBe(true);
    expect(sameBits(both.logits!.get('b')!, b2.logits!.get('b')!)).toBe(true);
  });
});

describe('step validation (one-line ExecutorInputError)', () => {
  const cpu = createCpuReferenceExecutor(stories, { numBlocks: 4, blockSize: 16 });
  const ok: StepInput = { prefill: [{ req: 'a', tokens: [1, 2], startPos: 0, blockTable: [0] }], decode: [], prefillShare: 0.5 };
  const bad: [string, StepInput, RegExp][] = [
    ['token outside the vocabulary', { ...ok, prefill: [{ req: 'a', tokens: [512], startPos: 0, blockTable: [0] }] }, /token 512 outside the vocabulary 0\.\.511/],
    ['position past seq_len', { ...ok, prefill: [], decode: [{ req: 'a', token: 1, pos: 512, blockTable: [0, 1, 2, 3] }] }, /position 512 beyond the model's seq_len 512/],
    ['block table too short', { ...ok, prefill: [{ req: 'a', tokens: [1], startPos: 16, blockTable: [0] }] }, /block table has 1 blocks, position 16 needs 2/],
    ['block outside the pool', { ...ok, prefill: [{ req: 'a', tokens: [1], startPos: 0, blockTable: [4] }] }, /block 4 outside the pool 0\.\.3/],
    ['request twice in a step', { ...ok, decode: [{ req: 'a', token: 1, pos: 2, blockTable: [0] }] }, /request 'a' appears twice in one step/],
    ['empty prefill', { ...ok, prefill: [{ req: 'a', tokens: [], startPos: 0, blockTable: [0] }] }, /no tokens/],
    ['split outside [0, 1]', { ...ok, prefillShare: 1.5 }, /prefillShare must be in \[0, 1\], got 1\.5/],
    ['split not a number', { ...ok, prefillShare: Number.NaN }, /prefillShare must be in \[0, 1\]/],
  ];
  it('accepts a valid step, and an empty one', async () => {
    expect((await cpu.step(ok)).next.has('a')).toBe(true);
    expect((await cpu.step({ prefill: [], decode: [], prefillShare: 0 })).next.size).toBe(0);
  });
  for (const [name, input, message] of bad) {
    it(name, async () => {
      const error = await cpu.step(input).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ExecutorInputError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('\n');
    });
  }
});

describe("generateGreedy follows run.c's loop", () => {
  /** An executor that answers a fixed sequence of next tokens and records the steps it was asked for. */
  function scripted(answers: number[]): ModelExecutor & { seen: StepInput[] } {
    const model = { ...stories.config } as ModelConfig;
    const seen: StepInput[] = [];
    return {
      name: 'cpu',
      model,
      pool: { numBlocks: 32, blockSize: 16 },
      seen,
      async step(input: StepInput): Promise<StepOutput> {
        seen.push(input);
        const req = (input.prefill[0] ?? input.decode[0]).req;
        return { next: new Map([[req, answers[seen.length - 1]]]) };
      },
      destroy() {},
    };
  }

  it('stops before emitting token 1 (BOS), as run.c breaks on next == 1', async () => {
    const ex = scripted([7, 8, 1, 9]);
    expect(await generateGreedy(ex, [1], 64)).toEqual([7, 8]);
    expect(ex.seen).toHaveLength(3);
  });

  it('prefills the prompt once, then decodes position by position; 0 steps means seq_len', async () => {
    const ex = scripted(Array.from({ length: 600 }, () => 5));
    const ids = await generateGreedy(ex, [1, 2, 3], 0);
    expect(ids).toHaveLength(512 - 3 + 1);
    expect(ex.seen[0].prefill[0]).toMatchObject({ tokens: [1, 2, 3], startPos: 0 });
    expect(ex.seen[1].decode[0]).toMatchObject({ token: 5, pos: 3 });
    expect(ex.seen.at(-1)!.decode[0].pos).toBe(511);
  });
});
