// semi-PD's fitted latency forms and their online least-squares refit (used by the semi-pd policy).
//
//   TTFT(x) = a1 / (x − λ) + b1      x: prefill share as a fraction of the GPU (share / 100)
//   TPOT(y) = a2 / y + b2            y: decode share as a fraction
//
// TTFT has the shape of an M/M/1 sojourn time: the prefill worker serves at a rate proportional to x and
// λ is the offered prefill load as a fraction of the whole GPU's prefill capacity, so the queue is stable
// only when x > λ. λ is not fitted: it is measured each window (see prefillLoad). Given λ, both forms are
// linear in their coefficients, so the refit is an ordinary 2×2 least-squares solve.
import type { Observation } from '../policy-api.ts';

export interface FittedCoefficients {
  a1: number;
  b1: number;
  a2: number;
  b2: number;
}

/** semi-PD's published fit for Llama3-8B (seconds, shares as fractions). Used as the prior before data. */
export const LLAMA3_8B_FIT: Readonly<FittedCoefficients> = Object.freeze({ a1: 0.6809, b1: 0.022, a2: 0.6284, b2: 0.3818 });

/** Predicted TTFT in seconds at prefill fraction x under load λ; +Infinity when x ≤ λ (the queue never drains). */
export function predictTtft(c: FittedCoefficients, x: number, lambda: number): number {
  return x > lambda ? c.a1 / (x - lambda) + c.b1 : Number.POSITIVE_INFINITY;
}

/** Predicted TPOT in seconds at decode fraction y. */
export function predictTpot(c: FittedCoefficients, y: number): number {
  return y > 0 ? c.a2 / y + c.b2 : Number.POSITIVE_INFINITY;
}

/**
 * The offered prefill load λ as a fraction of the GPU: arrival rate × seconds one average prompt takes at
 * 100 %. Needs a prompt length; the window's queue gives one, otherwise the caller's last known mean.
 */
export function prefillLoad(obs: Observation, meanPromptTokens: number): number {
  if (!(obs.arrivalRate > 0) || !(meanPromptTokens > 0)) return 0;
  const perRequest = obs.model.prefillTime(100, meanPromptTokens);
  const lambda = obs.arrivalRate * perRequest;
  return Number.isFinite(lambda) && lambda > 0 ? lambda : 0;
}

/**
 * Coefficients read off the engine's latency model for the current workload, used as the refit's prior:
 * a1 = one average prompt's prefill time at 100 % (the M/M/1 service time), b1 = 0; (a2, b2) = the least-
 * squares line of the model's decode step time against 1/y at y = 25, 50, 75, 100 % for the running batch.
 */
export function modelPrior(obs: Observation, meanPromptTokens: number): FittedCoefficients {
  const a1 = obs.model.prefillTime(100, meanPromptTokens);
  const batch = Math.max(1, obs.decodeBatch.requests);
  const context = Math.max(obs.decodeBatch.contextTokens, meanPromptTokens);
  const decodeSamples = [25, 50, 75, 100].map((share) => ({
    feature: 100 / share,
    latency: obs.model.decodeTime(share, batch, context),
  }));
  const decode = fitLine(decodeSamples, { a: 0, b: 0 }, 1e-12);
  const finite = (v: number) => (Number.isFinite(v) && v >= 0 ? v : 0);
  return { a1: finite(a1), b1: 0, a2: finite(decode.a), b2: finite(decode.b) };
}

/** One observed point of a form `latency = a · feature + b` (feature = 1/(x − λ) or 1/y). */
export interface FitSample {
  feature: number;
  latency: number;
}

/**
 * Least squares for `latency = a · feature + b`, with a small ridge pull towards the prior so that one
 * sample (or many at the same share, the usual case between resizes) still gives a unique answer.
 * The result is clamped to a ≥ 0, b ≥ 0: the form must stay non-increasing in the share (property M1).
 */
export function fitLine(samples: readonly FitSample[], prior: { a: number; b: number }, ridge: number): { a: number; b: number } {
  let su = 0;
  let suu = 0;
  let st = 0;
  let sut = 0;
  for (const { feature, latency } of samples) {
    su += feature;
    suu += feature * feature;
    st += latency;
    sut += feature * latency;
  }
  const n = samples.length;
  // Normal equations of Σ(a·u + b − t)² + ridge·((a − a0)² + (b − b0)²).
  const m11 = suu + ridge;
  const m12 = su;
  const m22 = n + ridge;
  const r1 = sut + ridge * prior.a;
  const r2 = st + ridge * prior.b;
  const det = m11 * m22 - m12 * m12;
  if (!(Math.abs(det) > 1e-300)) return { ...prior };
  let a = (r1 * m22 - m12 * r2) / det;
  let b = (m11 * r2 - m12 * r1) / det;
  if (a < 0) {
    // Refit b alone with a = 0 (the constrained optimum when the unconstrained a is negative).
    a = 0;
    b = (st + ridge * prior.b) / m22;
  }
  if (b < 0) {
    b = 0;
    a = Math.max(0, (sut + ridge * prior.a) / m11);
  }
  return Number.isFinite(a) && Number.isFinite(b) ? { a, b } : { ...prior };
}
