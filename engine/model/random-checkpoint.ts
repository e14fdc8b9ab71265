// Seeded random llama2.c checkpoints of any shape: the same seed and shape give the same bytes on every
// machine, so tests and benchmarks can use models larger than stories260K without shipping them.
import { configFromHeader, parseCheckpoint, serializeCheckpoint, tensorSizes, type ModelWeights } from './checkpoint.ts';

export interface RandomModelShape {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** Classifier shared with the embedding (positive vocab_size in the header); default true. */
  sharedClassifier?: boolean;
}

/** mulberry32: a tiny 32-bit PRNG, enough for weights and reproducible everywhere. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random weights: matrices uniform in ±1/sqrt(fan_in) (activations keep unit scale through the layers),
 * RMSNorm gains 1 ± 0.1, embedding uniform ±1 so the shared classifier gives well-spread logits.
 */
export function randomWeights(shape: RandomModelShape, seed: number): ModelWeights {
  const shared = shape.sharedClassifier ?? true;
  const config = configFromHeader(
    { ...shape, vocabSize: shared ? shape.vocabSize : -shape.vocabSize },
    `random model ${JSON.stringify(shape)}`,
  );
  const sizes = tensorSizes(config);
  const next = mulberry32(seed);
  const uniform = (count: number, scale: number, center = 0) => {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = center + scale * (2 * next() - 1);
    return out;
  };
  const inv = (n: number) => 1 / Math.sqrt(n);
  const tokenEmbedding = uniform(sizes.tokenEmbedding, 1);
  const rmsAtt = uniform(sizes.rmsAtt, 0.1, 1);
  const wq = uniform(sizes.wq, inv(config.dim));
  const wk = uniform(sizes.wk, inv(config.dim));
  const wv = uniform(sizes.wv, inv(config.dim));
  const wo = uniform(sizes.wo, inv(config.dim));
  const rmsFfn = uniform(sizes.rmsFfn, 0.1, 1);
  const w1 = uniform(sizes.w1, inv(config.dim));
  const w2 = uniform(sizes.w2, inv(config.hiddenDim));
  const w3 = uniform(sizes.w3, inv(config.dim));
  const rmsFinal = uniform(sizes.rmsFinal, 0.1, 1);
  const wcls = shared ? tokenEmbedding : uniform(sizes.wcls, inv(config.dim));
  return { config, tokenEmbedding, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, wcls };
}

/** The bytes of a random legacy checkpoint, deterministic from (shape, seed). */
export function randomCheckpoint(shape: RandomModelShape, seed: number): Uint8Array {
  return serializeCheckpoint(randomWeights(shape, seed));
}

/** Random weights as the loader would return them (round-tripped through the file format). */
export function randomModel(shape: RandomModelShape, seed: number): ModelWeights {
  return parseCheckpoint(randomCheckpoint(shape, seed), `random model seed ${seed}`);
}
