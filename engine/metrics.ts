// Serving metrics of a run: latency distributions (TTFT, TPOT, end-to-end), SLO attainment, goodput, and
// the split and KV occupancy over time. Pure functions over per-request records, so that they can be
// checked on hand-made cases.
import type { Slo } from './policy-api.ts';

/** What the engine records about one request. Times in virtual seconds; NaN when it did not happen. */
export interface RequestRecord {
  id: string;
  arrival: number;
  prompt: number;
  /** Output limit (the workload's output length). */
  maxTokens: number;
  generated: number;
  /** Time of the token with index 0. */
  firstTokenAt: number;
  /** Time of the last token appended. */
  lastTokenAt: number;
  /** Time of finish or abort. */
  endAt: number;
  outcome: 'finished' | 'aborted' | 'rejected' | 'live';
  preemptions: number;
}

export interface Distribution {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface SplitSample {
  t: number;
  prefill: number;
  decode: number;
}

export interface OccupancySample {
  t: number;
  /** Fraction of all KV blocks (every pool) owned by requests, 0..1. */
  used: number;
}

export interface RunMetrics {
  requests: { total: number; finished: number; aborted: number; rejected: number; live: number };
  ttft: Distribution;
  tpot: Distribution;
  e2e: Distribution;
  slo: Slo;
  /** Fraction of judged requests (finished or rejected; user aborts excluded) that met both SLOs. */
  sloAttainment: number;
  /** Requests meeting both SLOs per second of the run (first arrival to last end). */
  goodput: number;
  /** Finished requests and output tokens per second of the run. */
  throughput: { requestsPerSecond: number; tokensPerSecond: number };
  outputTokens: number;
  preemptions: number;
  /** First arrival to last end, virtual seconds. */
  makespan: number;
  splitTimeline: SplitSample[];
  kvOccupancy: { samples: OccupancySample[]; mean: number; peak: number };
}

/**
 * The q-quantile (0..1) of ascending `sorted` values by linear interpolation between the closest ranks
 * (rank q·(n − 1), numpy's default); NaN for no values.
 */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (n === 1) return sorted[0];
  const rank = q * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  const frac = rank - lo;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i];
  return {
    count: sorted.length,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
  };
}

/** TTFT of a request: arrival to its first token; NaN if none was generated. */
export function ttftOf(r: RequestRecord): number {
  return r.generated > 0 ? r.firstTokenAt - r.arrival : Number.NaN;
}

/** TPOT of a request: mean time between its output tokens; NaN with fewer than two tokens. */
export function tpotOf(r: RequestRecord): number {
  return r.generated > 1 ? (r.lastTokenAt - r.firstTokenAt) / (r.generated - 1) : Number.NaN;
}

/**
 * Whether a finished request met both SLOs. A one-token request has no TPOT and meets that part. A
 * rejected request (it could never fit the KV pool) meets neither.
 */
export function meetsSlo(r: RequestRecord, slo: Slo): boolean {
  if (r.outcome !== 'finished') return false;
  const tpot = tpotOf(r);
  return ttftOf(r) <= slo.ttft && (Number.isNaN(tpot) || tpot <= slo.tpot);
}

export function summarize(
  records: readonly RequestRecord[],
  slo: Slo,
  series: { splitTimeline?: SplitSample[]; kvOccupancy?: OccupancySample[] } = {},
): RunMetrics {
  const ttft: number[] = [];
  const tpot: number[] = [];
  const e2e: number[] = [];
  let finished = 0;
  let aborted = 0;
  let rejected = 0;
  let live = 0;
  let met = 0;
  let outputTokens = 0;
  let preemptions = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const r of records) {
    if (r.arrival < first) first = r.arrival;
    if (r.endAt > last) last = r.endAt;
    outputTokens += r.generated;
    preemptions += r.preemptions;
    switch (r.outcome) {
      case 'finished': {
        finished++;
        ttft.push(ttftOf(r));
        const t = tpotOf(r);
        if (!Number.isNaN(t)) tpot.push(t);
        e2e.push(r.endAt - r.arrival);
        if (meetsSlo(r, slo)) met++;
        break;
      }
      case 'aborted':
        aborted++;
        break;
      case 'rejected':
        rejected++;
        break;
      default:
        live++;
    }
  }
  const makespan = records.length && Number.isFinite(last) ? Math.max(0, last - first) : 0;
  const judged = finished + rejected;
  const occupancy = series.kvOccupancy ?? [];
  let occSum = 0;
  let peak = 0;
  for (const s of occupancy) {
    occSum += s.used;
    if (s.used > peak) peak = s.used;
  }
  return {
    requests: { total: records.length, finished, aborted, rejected, live },
    ttft: distribution(ttft),
    tpot: distribution(tpot),
    e2e: distribution(e2e),
    slo,
    sloAttainment: judged ? met / judged : Number.NaN,
    goodput: makespan > 0 ? met / makespan : Number.NaN,
    throughput: {
      requestsPerSecond: makespan > 0 ? finished / makespan : Number.NaN,
      tokensPerSecond: makespan > 0 ? outputTokens / makespan : Number.NaN,
    },
    outputTokens,
    preemptions,
    makespan,
    splitTimeline: series.splitTimeline ?? [],
    kvOccupancy: { samples: occupancy, mean: occupancy.length ? occSum / occupancy.length : Number.NaN, peak },
  };
}

/** Percentiles over a window, in the Observation's shape. */
export function percentiles(values: readonly number[]): { p50: number; p90: number; p99: number; count: number } {
  const sorted = Float64Array.from(values).sort();
  return { p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), count: sorted.length };
}

