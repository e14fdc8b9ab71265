// Fits the kernel-class constants (engine/kernel-model.ts) to measured kernel tables, one class at a time
// against the rows that measure it alone (per-layer operators for the dense layers, the attention sample for
// each attention kernel, the embedding column), and scores the composed steps (bench/calibration/tables.ts)
// against the form. Deterministic: a fixed-start Nelder–Mead on transformed parameters, no randomness.
import { kernelSeconds, kernelTimes, ownCausalPairs, type KernelConstants, type StepWork } from '../../engine/kernel-model.ts';
import type { Profile } from '../../engine/profile.ts';
import { type AttentionRow, type MeasuredStep, type ModelTables } from './tables.ts';

/** Minimises f from x0 (Nelder–Mead, standard coefficients); deterministic. */
export function nelderMead(f: (x: number[]) => number, x0: number[], iterations = 4000, step = 0.5): number[] {
  const n = x0.length;
  let simplex = [x0.slice()];
  for (let i = 0; i < n; i++) {
    const x = x0.slice();
    x[i] += step;
    simplex.push(x);
  }
  let values = simplex.map(f);
  const combine = (a: number[], b: number[], t: number) => a.map((v, i) => v + t * (b[i] - v));
  for (let it = 0; it < iterations; it++) {
    const order = values.map((v, i) => i).sort((a, b) => values[a] - values[b] || a - b);
    simplex = order.map((i) => simplex[i]);
    values = order.map((i) => values[i]);
    if (values[n] - values[0] < 1e-14 * (Math.abs(values[0]) + 1e-30)) break;
    const centroid = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) centroid[j] += simplex[i][j] / n;
    const worst = simplex[n];
    const reflected = combine(centroid, worst, -1);
    const fr = f(reflected);
    if (fr < values[0]) {
      const expanded = combine(centroid, worst, -2);
      const fe = f(expanded);
      [simplex[n], values[n]] = fe < fr ? [expanded, fe] : [reflected, fr];
    } else if (fr < values[n - 1]) {
      [simplex[n], values[n]] = [reflected, fr];
    } else {
      const contracted = fr < values[n] ? combine(centroid, worst, -0.5) : combine(centroid, worst, 0.5);
      const fc = f(contracted);
      if (fc < Math.min(fr, values[n])) {
        [simplex[n], values[n]] = [contracted, fc];
      } else {
        for (let i = 1; i <= n; i++) {
          simplex[i] = combine(simplex[0], simplex[i], 0.5);
          values[i] = f(simplex[i]);
        }
      }
    }
  }
  let best = 0;
  for (let i = 1; i <= n; i++) if (values[i] < values[best]) best = i;
  return simplex[best];
}

const logistic = (x: number) => 1 / (1 + Math.exp(-x));
const logit = (p: number) => Math.log(p / (1 - p));
/** Mean squared log ratio: the fit's loss (symmetric in over- and under-prediction, scale-free). */
function logLoss(pairs: [number, number][]): number {
  let s = 0;
  for (const [predicted, measured] of pairs) s += Math.log(predicted / measured) ** 2;
  return s / pairs.length;
}

/** Four significant digits: what a profile stores, so that a refit reproduces the shipped numbers exactly. */
export function round4(x: number): number {
  return Number(x.toPrecision(4));
}

/** A starting point: plausible constants the fit moves from. */
export const START: KernelConstants = {
  dense: { computeEfficiency: 0.6, memoryEfficiency: 0.75, smoothness: 3, elementwiseBytesPerToken: 100_000, launchSeconds: 20e-6 },
  embedding: { effectiveBytesPerToken: 50_000 },
  prefillAttention: { pairEfficiency: 0.6, prefixPairEfficiency: 0.4, queryPairs: 100, launchSeconds: 10e-6 },
  decodeAttention: { kvEfficiency: 0.8, requestTokens: 100, launchSeconds: 10e-6 },
  bandwidthSaturationShare: 0.5,
};

const work = (w: Partial<StepWork>): StepWork => ({ prefillTokens: 0, ownPairs: 0, prefixPairs: 0, decodeTokens: 0, contextTokens: 0, logitTokens: 0, ...w });

/** Predicted seconds of one layer's dense operators at `tokens` tokens. */
export function denseLayerSeconds(profile: Profile, k: KernelConstants, tokens: number): number {
  const L = profile.model.layers;
  const t = kernelTimes(profile, k, work({ prefillTokens: tokens }));
  const denseOnly = { ...t, prefillAttention: 0, lmHeadCompute: 0, lmHeadWeights: 0, embedding: 0, launch: L * k.dense.launchSeconds };
  return kernelSeconds(denseOnly, k, 1, 1) / L;
}

/** Predicted per-layer seconds of an attention row. */
export function attentionLayerSeconds(profile: Profile, k: KernelConstants, r: AttentionRow): number {
  const L = profile.model.layers;
  if (r.kind === 'decode') {
    const t = kernelTimes(profile, k, work({ decodeTokens: r.size, contextTokens: r.size * r.context }));
    return t.decodeAttention / L + k.decodeAttention.launchSeconds;
  }
  const t = kernelTimes(profile, k, work({ prefillTokens: r.size, ownPairs: ownCausalPairs(r.size), prefixPairs: r.size * r.context }));
  return t.prefillAttention / L + k.prefillAttention.launchSeconds;
}

/** Predicted kernel seconds of a composed step (whole GPU, no host overhead). */
export function predictStep(profile: Profile, k: KernelConstants, s: MeasuredStep): number {
  const w = work({
    prefillTokens: s.prefillTokens,
    ownPairs: ownCausalPairs(s.prefillTokens),
    prefixPairs: s.prefillTokens * s.prefix,
    decodeTokens: s.decodes,
    contextTokens: s.decodes * s.context,
    logitTokens: (s.prefillTokens > 0 ? 1 : 0) + s.decodes,
  });
  return kernelSeconds(kernelTimes(profile, k, w), k, 1, 1);
}

function fitDense(profile: Profile, t: ModelTables, k: KernelConstants): KernelConstants['dense'] {
  const rows = t.operators.tokens.map((n, i) => [n, t.operators.layer[i]] as const);
  const decodeParams = (x: number[]): KernelConstants['dense'] => ({
    computeEfficiency: logistic(x[0]),
    memoryEfficiency: logistic(x[1]),
    smoothness: 1 + Math.exp(x[2]),
    elementwiseBytesPerToken: Math.exp(x[3]),
    launchSeconds: Math.exp(x[4]),
  });
  const d = k.dense;
  const x0 = [logit(d.computeEfficiency), logit(d.memoryEfficiency), Math.log(d.smoothness - 1), Math.log(d.elementwiseBytesPerToken), Math.log(d.launchSeconds)];
  const loss = (x: number[]) => {
    const kk = { ...k, dense: decodeParams(x) };
    return logLoss(rows.map(([n, m]) => [denseLayerSeconds(profile, kk, n), m]));
  };
  return decodeParams(nelderMead(loss, x0));
}

function fitEmbedding(profile: Profile, t: ModelTables, dense: KernelConstants['dense']): KernelConstants['embedding'] {
  // One constant: the geometric mean of the effective bytes per token over the rows (a least-squares fit in logs).
  const bandwidth = profile.gpu.hbmBytesPerSecond * dense.memoryEfficiency;
  const logs = t.operators.tokens.map((n, i) => Math.log((t.operators.embedding[i] * bandwidth) / n));
  return { effectiveBytesPerToken: Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length) };
}

function fitPrefillAttention(profile: Profile, t: ModelTables, k: KernelConstants): KernelConstants['prefillAttention'] {
  const rows = t.attention.filter((r) => r.kind !== 'decode');
  const decodeParams = (x: number[]): KernelConstants['prefillAttention'] => ({
    pairEfficiency: logistic(x[0]),
    prefixPairEfficiency: logistic(x[1]),
    queryPairs: Math.exp(x[2]),
    launchSeconds: Math.exp(x[3]),
  });
  const p = k.prefillAttention;
  const x0 = [logit(p.pairEfficiency), logit(p.prefixPairEfficiency), Math.log(p.queryPairs), Math.log(p.launchSeconds)];
  const loss = (x: number[]) => {
    const kk = { ...k, prefillAttention: decodeParams(x) };
    return logLoss(rows.map((r) => [attentionLayerSeconds(profile, kk, r), r.seconds]));
  };
  return decodeParams(nelderMead(loss, x0));
}

function fitDecodeAttention(profile: Profile, t: ModelTables, k: KernelConstants): KernelConstants['decodeAttention'] {
  const rows = t.attention.filter((r) => r.kind === 'decode');
  const decodeParams = (x: number[]): KernelConstants['decodeAttention'] => ({ kvEfficiency: logistic(x[0]), requestTokens: Math.exp(x[1]), launchSeconds: Math.exp(x[2]) });
  const d = k.decodeAttention;
  const x0 = [logit(d.kvEfficiency), Math.log(d.requestTokens), Math.log(d.launchSeconds)];
  const loss = (x: number[]) => {
    const kk = { ...k, decodeAttention: decodeParams(x) };
    return logLoss(rows.map((r) => [attentionLayerSeconds(profile, kk, r), r.seconds]));
  };
  return decodeParams(nelderMead(loss, x0));
}

/** Every constant rounded to four significant digits. */
export function roundConstants(k: KernelConstants): KernelConstants {
  const r = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).map(([key, v]) => [key, typeof v === 'number' ? round4(v) : r(v as object)])) as T;
  return r(k);
}

/**
 * Fits the kernel constants of `profile`'s model on `t` (dense, embedding, then each attention kernel),
 * keeping the bandwidth saturation share of `start` (the tables measure no partial shares).
 */
export function fitKernels(profile: Profile, t: ModelTables, start: KernelConstants = START): KernelConstants {
  const dense = fitDense(profile, t, start);
  const embedding = fitEmbedding(profile, t, dense);
  const withDense = { ...start, dense, embedding };
  const prefillAttention = fitPrefillAttention(profile, t, withDense);
  const decodeAttention = fitDecodeAttention(profile, t, { ...withDense, prefillAttention });
  return snapNegligible(roundConstants({ ...withDense, prefillAttention, decodeAttention }));
}

/**
 * Counts of bytes or tokens below a thousandth are nothing: the fit drove that term out (its cost is in
 * another term), and the profile says 0 rather than a number like 8e-7 that reads as a measurement.
 */
function snapNegligible(k: KernelConstants): KernelConstants {
  const snap = (x: number) => (x < 1e-3 ? 0 : x);
  return {
    ...k,
    dense: { ...k.dense, elementwiseBytesPerToken: snap(k.dense.elementwiseBytesPerToken) },
    embedding: { effectiveBytesPerToken: snap(k.embedding.effectiveBytesPerToken) },
    prefillAttention: { ...k.prefillAttention, queryPairs: snap(k.prefillAttention.queryPairs) },
    decodeAttention: { ...k.decodeAttention, requestTokens: snap(k.decodeAttention.requestTokens) },
  };
}

/** Absolute percentage errors of predicted against measured. */
export interface ErrorSummary {
  rows: number;
  mape: number;
  maxError: number;
}

export function summarise(pairs: readonly (readonly [number, number])[]): ErrorSummary {
  if (pairs.length === 0) return { rows: 0, mape: 0, maxError: 0 };
  const errors = pairs.map(([p, m]) => Math.abs(p - m) / m);
  return { rows: pairs.length, mape: errors.reduce((a, b) => a + b, 0) / errors.length, maxError: Math.max(...errors) };
}

/** Dense per-layer rows: predicted against measured seconds, by token count. */
export function denseRows(profile: Profile, k: KernelConstants, t: ModelTables): { tokens: number; predicted: number; measured: number }[] {
  return t.operators.tokens.map((n, i) => ({ tokens: n, predicted: denseLayerSeconds(profile, k, n), measured: t.operators.layer[i] }));
}

