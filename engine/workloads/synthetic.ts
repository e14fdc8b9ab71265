// Synthetic workloads: Poisson or bursty (Gamma inter-arrival) arrivals, length distributions (fixed,
// uniform, lognormal, empirical), and optional client aborts. Seeded: the same options give the same list.
import { Random } from '../random.ts';
import { loadAzure } from './azure.ts';
import { WorkloadError, type WorkloadRequest } from './types.ts';

export type LengthDistribution =
  | { kind: 'fixed'; value: number }
  | { kind: 'uniform'; min: number; max: number }
  /** exp(N(ln median, sigma²)), rounded, clamped to [min, max]. */
  | { kind: 'lognormal'; median: number; sigma: number; min: number; max: number }
  /** Uniform draws from a list of observed lengths. */
  | { kind: 'empirical'; values: readonly number[]; source: string };

export type ArrivalProcess =
  | { kind: 'poisson' }
  /** Gamma inter-arrival times with coefficient of variation `cv` (cv = 1 is Poisson; cv > 1 is bursty). */
  | { kind: 'bursty'; cv: number };

export interface SyntheticOptions {
  arrivals: ArrivalProcess;
  /** Mean arrival rate, requests per second. */
  rate: number;
  /** Stop after this many requests, or after this many seconds of arrivals (whichever comes first). */
  requests?: number;
  duration?: number;
  prompt: LengthDistribution;
  output: LengthDistribution;
  seed: number;
  /** Fraction of requests the client aborts (0..1), each after an exponential delay of mean `abortAfter` seconds. */
  abortFraction?: number;
  abortAfter?: number;
  idPrefix?: string;
}

function positiveInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new WorkloadError(`${what} must be an integer ≥ 1, got '${text}'`);
  return n;
}

/**
 * Reads a length distribution: `fixed:N`, `uniform:MIN:MAX`, `lognormal:MEDIAN:SIGMA[:MAX]`,
 * `empirical:azure-conv` or `empirical:azure-code` (the trace's prompt or output lengths, by `column`),
 * or `empirical:N,N,...`. A bare number N means `fixed:N`.
 */
export function parseLength(spec: string, column: 'prompt' | 'output', option = column): LengthDistribution {
  const parts = spec.split(':');
  const what = `--${option}-len`;
  if (parts.length === 1 && /^\d+$/.test(spec)) return { kind: 'fixed', value: positiveInt(spec, what) };
  switch (parts[0]) {
    case 'fixed':
      if (parts.length !== 2) break;
      return { kind: 'fixed', value: positiveInt(parts[1], what) };
    case 'uniform': {
      if (parts.length !== 3) break;
      const min = positiveInt(parts[1], `${what} minimum`);
      const max = positiveInt(parts[2], `${what} maximum`);
      if (max < min) throw new WorkloadError(`${what}: uniform maximum ${max} is below the minimum ${min}`);
      return { kind: 'uniform', min, max };
    }
    case 'lognormal': {
      if (parts.length !== 3 && parts.length !== 4) break;
      const median = Number(parts[1]);
      const sigma = Number(parts[2]);
      if (!(median >= 1) || !(sigma >= 0) || !Number.isFinite(median) || !Number.isFinite(sigma)) {
        throw new WorkloadError(`${what}: lognormal needs MEDIAN ≥ 1 and SIGMA ≥ 0, got '${spec}'`);
      }
      const max = parts.length === 4 ? positiveInt(parts[3], `${what} maximum`) : 1_000_000;
      return { kind: 'lognormal', median, sigma, min: 1, max };
    }
    case 'empirical': {
      if (parts.length !== 2) break;
      if (parts[1] === 'azure-conv' || parts[1] === 'azure-code') {
        const trace = loadAzure(parts[1] === 'azure-conv' ? 'conv' : 'code');
        return { kind: 'empirical', values: trace.map((r) => r[column]), source: `${parts[1]} ${column} lengths` };
      }
      const values = parts[1].split(',').map((v) => positiveInt(v, `${what} empirical value`));
      return { kind: 'empirical', values, source: 'list' };
    }
  }
  throw new WorkloadError(`${what} must be fixed:N, uniform:MIN:MAX, lognormal:MEDIAN:SIGMA[:MAX] or empirical:azure-conv|azure-code|N,N,..., got '${spec}'`);
}

export function sampleLength(d: LengthDistribution, rng: Random): number {
  switch (d.kind) {
    case 'fixed':
      return d.value;
    case 'uniform':
      return rng.int(d.min, d.max);
    case 'lognormal': {
      const v = Math.round(d.median * Math.exp(d.sigma * rng.normal()));
      return v < d.min ? d.min : v > d.max ? d.max : v;
    }
    case 'empirical':
      return d.values[Math.floor(rng.float() * d.values.length)];
  }
}

export function synthetic(o: SyntheticOptions): WorkloadRequest[] {
  if (!(o.rate > 0) || !Number.isFinite(o.rate)) throw new WorkloadError(`rate must be a positive number of requests per second, got ${o.rate}`);
  if (o.requests === undefined && o.duration === undefined) throw new WorkloadError('a synthetic workload needs a number of requests or a duration');
  // The requests are held in memory: refuse up front what would exhaust it.
  const expected = Math.min(o.requests ?? Number.POSITIVE_INFINITY, (o.duration ?? Number.POSITIVE_INFINITY) * o.rate);
  if (!(expected <= MAX_SYNTHETIC_REQUESTS)) throw new WorkloadError(`a synthetic workload holds at most ${MAX_SYNTHETIC_REQUESTS.toLocaleString('en')} requests; this one asks for about ${expected.toExponential(2)} (requests, or rate × duration)`);
  if (o.arrivals.kind === 'bursty' && !(o.arrivals.cv > 0)) throw new WorkloadError(`burstiness (cv) must be > 0, got ${o.arrivals.cv}`);
  const abortFraction = o.abortFraction ?? 0;
  if (!(abortFraction >= 0 && abortFraction <= 1)) throw new WorkloadError(`abort fraction must be in 0..1, got ${abortFraction}`);
  const abortAfter = o.abortAfter ?? 2;
  if (!(abortAfter > 0)) throw new WorkloadError(`abort delay must be > 0 seconds, got ${abortAfter}`);
  // Independent streams: changing the length distribution does not move the arrival times.
  const root = new Random(o.seed);
  const arrivalRng = root.fork('arrivals');
  const promptRng = root.fork('prompt');
  const outputRng = root.fork('output');
  const abortRng = root.fork('aborts');
  const limit = o.requests ?? Number.POSITIVE_INFINITY;
  const horizon = o.duration ?? Number.POSITIVE_INFINITY;
  const out: WorkloadRequest[] = [];
  const prefix = o.idPrefix ?? 'r';
  let t = 0;
  for (;;) {
    const gap =
      o.arrivals.kind === 'poisson'
        ? arrivalRng.exponential(o.rate)
        : arrivalRng.gamma(1 / (o.arrivals.cv * o.arrivals.cv), (o.arrivals.cv * o.arrivals.cv) / o.rate);
    t += gap;
    if (out.length >= limit || t >= horizon) break;
    const r: WorkloadRequest = { id: `${prefix}${out.length}`, arrival: t, prompt: sampleLength(o.prompt, promptRng), output: sampleLength(o.output, outputRng) };
    if (abortFraction > 0 && abortRng.float() < abortFraction) r.abortAt = t + abortRng.exponential(1 / abortAfter);
    out.push(r);
  }
  return out;
}

/** The most requests a synthetic workload may hold (about 200 bytes each, all in memory). */
export const MAX_SYNTHETIC_REQUESTS = 2_000_000;

/** Rescales arrival times so that the mean rate becomes `rate` (requests per second). */
export function scaleToRate(requests: WorkloadRequest[], rate: number): WorkloadRequest[] {
  if (!(rate > 0) || !Number.isFinite(rate)) throw new WorkloadError(`rate must be a positive number of requests per second, got ${rate}`);
  if (requests.length < 2) return requests;
  const span = requests[requests.length - 1].arrival - requests[0].arrival;
  if (!(span > 0)) return requests;
  const factor = (requests.length - 1) / span / rate;
  return requests.map((r) => {
    const arrival = r.arrival * factor;
    const scaled: WorkloadRequest = { ...r, arrival };
    if (r.abortAt !== undefined) scaled.abortAt = arrival + (r.abortAt - r.arrival) * factor;
    return scaled;
  });
}
