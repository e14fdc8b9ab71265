// The llama2.c legacy checkpoint loader and the seeded random checkpoints.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CheckpointError,
  checkpointByteLength,
  HEADER_BYTES,
  loadCheckpoint,
  parseCheckpoint,
  serializeCheckpoint,
  type ModelWeights,
} from '../engine/model/checkpoint.ts';
import { randomCheckpoint, randomModel, randomWeights, type RandomModelShape } from '../engine/model/random-checkpoint.ts';
import { STORIES260K_PATH } from '../engine/model/shipped.ts';
import { PROPERTY_SEED } from './model-schedule.ts';

const small: RandomModelShape = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 32, seqLen: 16 };

function header(values: number[]): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setInt32(4 * i, v, true));
  return bytes;
}

function expectSameWeights(a: ModelWeights, b: ModelWeights) {
  expect(a.config).toEqual(b.config);
  for (const key of ['tokenEmbedding', 'rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w2', 'w3', 'rmsFinal', 'wcls'] as const) {
    expect(Buffer.from(a[key].buffer, a[key].byteOffset, a[key].byteLength).equals(Buffer.from(b[key].buffer, b[key].byteOffset, b[key].byteLength)), key).toBe(true);
  }
}

describe('stories260K (the shipped copy)', () => {
  it('is the attributed file, byte for byte (sha256 from its README)', () => {
    const readme = readFileSync(join(STORIES260K_PATH, '..', 'README.md'), 'utf8');
    const documented = /sha256 ([0-9a-f]{64})/.exec(readme)?.[1];
    const actual = createHash('sha256').update(readFileSync(STORIES260K_PATH)).digest('hex');
    expect(documented).toBeDefined();
    expect(actual).toBe(documented);
    expect(readme).toMatch(/MIT/);
    expect(readme).toMatch(/Copyright \(c\) 2023 Andrej Karpathy/);
  });

  it('loads with grouped-query attention and a shared classifier, its size exactly what the header implies', () => {
    const w = loadCheckpoint(STORIES260K_PATH);
    const c = w.config;
    expect(c.nKvHeads).toBeLessThan(c.nHeads);
    expect(c.kvMul).toBe(c.nHeads / c.nKvHeads);
    expect(c.kvDim).toBe((c.dim * c.nKvHeads) / c.nHeads);
    expect(c.sharedClassifier).toBe(true);
    expect(w.wcls).toBe(w.tokenEmbedding);
    expect(checkpointByteLength(c)).toBe(readFileSync(STORIES260K_PATH).byteLength);
    expect(w.wk.length).toBe(c.nLayers * c.kvDim * c.dim);
  });

  it('round-trips through serializeCheckpoint except for the unused RoPE tables', () => {
    const w = loadCheckpoint(STORIES260K_PATH);
    expectSameWeights(parseCheckpoint(serializeCheckpoint(w)), w);
  });
});

describe('random checkpoints', () => {
  it('are deterministic from the seed and differ between seeds', () => {
    const a = randomCheckpoint(small, 1);
    expect(Buffer.from(randomCheckpoint(small, 1)).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(randomCheckpoint(small, 2)).equals(Buffer.from(a))).toBe(false);
    expect(a.byteLength).toBe(checkpointByteLength(randomWeights(small, 1).config));
  });

  it('write a separate classifier when it is not shared (negative vocab_size in the header)', () => {
    const bytes = randomCheckpoint({ ...small, sharedClassifier: false }, 3);
    expect(new DataView(bytes.buffer).getInt32(20, true)).toBe(-small.vocabSize);
    const w = parseCheckpoint(bytes);
    expect(w.config.sharedClassifier).toBe(false);
    expect(w.wcls).not.toBe(w.tokenEmbedding);
    expectSameWeights(w, randomWeights({ ...small, sharedClassifier: false }, 3));
  });

  it('property: any valid shape round-trips, and every truncation is a one-line CheckpointError', () => {
    const shape = fc
      .record({
        headSize: fc.constantFrom(2, 4, 6),
        nKvHeads: fc.integer({ min: 1, max: 3 }),
        kvMul: fc.integer({ min: 1, max: 3 }),
        hiddenDim: fc.integer({ min: 1, max: 12 }),
        nLayers: fc.integer({ min: 1, max: 3 }),
        vocabSize: fc.integer({ min: 1, max: 20 }),
        seqLen: fc.integer({ min: 1, max: 8 }),
        sharedClassifier: fc.boolean(),
      })
      .map((s) => ({ ...s, nHeads: s.nKvHeads * s.kvMul, dim: s.headSize * s.nKvHeads * s.kvMul }));
    fc.assert(
      fc.property(shape, fc.nat(), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (s, seed, cut) => {
        const bytes = randomCheckpoint(s, seed);
        expectSameWeights(randomModel(s, seed), randomWeights(s, seed));
        const truncated = bytes.subarray(0, Math.floor(cut * bytes.byteLength));
        expect(() => parseCheckpoint(truncated, 'x.bin')).toThrowError(/^x\.bin: truncated, \d+ bytes/);
      }),
      { numRuns: 40, seed: PROPERTY_SEED },
    );
  });
});

describe('checkpoint errors are one clear line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pdspec-ckpt-'));
  const valid = randomCheckpoint(small, 9);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /truncated, 0 bytes is shorter than the 28-byte header/],
    ['header cut short', valid.subarray(0, 20), /truncated, 20 bytes/],
    ['tensors cut short', valid.subarray(0, valid.byteLength - 4), /truncated, \d+ bytes but the header implies \d+/],
    ['trailing bytes', new Uint8Array([...valid, 0, 0, 0, 0]), /malformed \(trailing bytes\)/],
    ['zero dim', header([0, 24, 2, 4, 2, 32, 16]), /malformed header, dim = 0/],
    ['negative layer count', header([16, 24, -1, 4, 2, 32, 16]), /malformed header, n_layers = -1/],
    ['heads not dividing dim', header([16, 24, 2, 5, 5, 32, 16]), /dim 16 is not a multiple of n_heads 5/],
    ['kv heads not dividing heads', header([16, 24, 2, 4, 3, 32, 16]), /n_heads 4 is not a multiple of n_kv_heads 3/],
    ['odd head size', header([12, 24, 2, 4, 2, 32, 16]), /head size 3 is odd/],
    ['versioned export', new Uint8Array([0x32, 0x34, 0x6b, 0x61, ...valid.subarray(4)]), /versioned llama2\.c export/],
  ];
  for (const [name, bytes, message] of cases) {
    it(name, () => {
      const path = join(dir, `${name.replace(/\W+/g, '-')}.bin`);
      writeFileSync(path, bytes);
      let error: unknown;
      try {
        loadCheckpoint(path);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(CheckpointError);
      const text = (error as Error).message;
      expect(text).toMatch(message);
      expect(text.startsWith(path)).toBe(true);
      expect(text).not.toContain('\n');
    });
  }

  it('a weight that is not a finite number', () => {
    const bytes = valid.slice();
    new DataView(bytes.buffer).setFloat32(HEADER_BYTES + 4 * 5, Number.NaN, true);
    expect(() => parseCheckpoint(bytes, 'nan.bin')).toThrowError(/^nan\.bin: malformed, tokenEmbedding\[5\] is not a finite number$/);
  });

  it('a missing file and a directory', () => {
    expect(() => loadCheckpoint(join(dir, 'absent.bin'))).toThrowError(/absent\.bin: no such checkpoint file$/);
    expect(() => loadCheckpoint(dir)).toThrowError(/not a regular file$/);
  });
});
