// Building a run's workload from a name or a file and the usual knobs (the CLI and the benchmarks).
import { Random } from '../random.ts';
import { loadAzure } from './azure.ts';
import { loadWorkloadFile } from './file.ts';
import { sharedPrefix, type SharedPrefixOptions } from './shared-prefix.ts';
import { parseLength, scaleToRate, synthetic, type ArrivalProcess } from './synthetic.ts';
import { normalise, WorkloadError, type WorkloadRequest } from './types.ts';

export { loadAzure } from './azure.ts';
export { loadWorkloadFile } from './file.ts';
export { parseLength, sampleLength, scaleToRate, synthetic } from './synthetic.ts';
export { expectedTurns, resolveSharedPrefixOptions, sharedPrefix, SHARED_PREFIX_DEFAULTS } from './shared-prefix.ts';
export type { SharedPrefixOptions } from './shared-prefix.ts';
export type { ArrivalProcess, LengthDistribution, SyntheticOptions } from './synthetic.ts';
export { WorkloadError, normalise, checkRequest } from './types.ts';
export type { WorkloadRequest } from './types.ts';

export const WORKLOAD_NAMES = ['azure-conv', 'azure-code', 'poisson', 'bursty', 'shared-prefix'] as const;

export interface WorkloadSpec {
  /** azure-conv, azure-code, poisson, bursty, shared-prefix, or a path to a CSV/JSONL file. */
  workload: string;
  /** Requests per second: the synthetic rate, or the rate a trace is rescaled to. */
  rate?: number;
  /** Keep arrivals before this many seconds. */
  duration?: number;
  /** Keep the first N requests. */
  requests?: number;
  /**
   * Length distributions of synthetic workloads (parseLength syntax). For shared-prefix, promptLen is the
   * length of a user message (after a system prompt, or a conversation turn's new message).
   */
  promptLen?: string;
  outputLen?: string;
  /** The other knobs of the shared-prefix workload (its defaults otherwise); rate, duration, requests and seed come from above. */
  sharedPrefix?: Omit<SharedPrefixOptions, 'rate' | 'duration' | 'requests' | 'seed'>;
  /** Coefficient of variation of bursty inter-arrival times (default 4). */
  cv?: number;
  /** Fraction of requests the client aborts, after an exponential delay of mean abortAfter seconds. */
  abortFraction?: number;
  abortAfter?: number;
  seed: number;
}

/** Gives a fraction of the requests an abort time (seeded; requests that already have one keep it). */
export function withAborts(requests: WorkloadRequest[], fraction: number, meanAfter: number, seed: number): WorkloadRequest[] {
  if (!(fraction >= 0 && fraction <= 1)) throw new WorkloadError(`abort fraction must be in 0..1, got ${fraction}`);
  if (!(meanAfter > 0)) throw new WorkloadError(`abort delay must be > 0 seconds, got ${meanAfter}`);
  if (fraction === 0) return requests;
  const rng = new Random(seed).fork('aborts');
  return requests.map((r) => {
    const pick = rng.float() < fraction;
    const delay = rng.exponential(1 / meanAfter);
    return pick && r.abortAt === undefined ? { ...r, abortAt: r.arrival + delay } : r;
  });
}

export function buildWorkload(spec: WorkloadSpec): WorkloadRequest[] {
  let requests: WorkloadRequest[];
  const name = spec.workload;
  if (name === 'poisson' || name === 'bursty') {
    const arrivals: ArrivalProcess = name === 'poisson' ? { kind: 'poisson' } : { kind: 'bursty', cv: spec.cv ?? 4 };
    requests = synthetic({
      arrivals,
      rate: spec.rate ?? 5,
      requests: spec.requests ?? (spec.duration === undefined ? 1000 : undefined),
      duration: spec.duration,
      prompt: parseLength(spec.promptLen ?? 'empirical:azure-conv', 'prompt'),
      output: parseLength(spec.outputLen ?? 'empirical:azure-conv', 'output'),
      seed: spec.seed,
    });
  } else if (name === 'shared-prefix') {
    requests = sharedPrefix({
      ...spec.sharedPrefix,
      ...(spec.promptLen === undefined ? {} : { userLen: parseLength(spec.promptLen, 'prompt') }),
      ...(spec.outputLen === undefined ? {} : { output: parseLength(spec.outputLen, 'output') }),
      rate: spec.rate ?? 5,
      requests: spec.requests ?? (spec.duration === undefined ? 1000 : undefined),
      duration: spec.duration,
      seed: spec.seed,
    });
  } else {
    if (spec.promptLen !== undefined || spec.outputLen !== undefined) {
      throw new WorkloadError(`--prompt-len and --output-len apply to synthetic workloads (poisson, bursty, shared-prefix), not to '${name}'`);
    }
    requests = name === 'azure-conv' ? loadAzure('conv') : name === 'azure-code' ? loadAzure('code') : normalise(loadWorkloadFile(name), name);
    if (spec.rate !== undefined) requests = scaleToRate(requests, spec.rate);
    if (spec.duration !== undefined) requests = requests.filter((r) => r.arrival < spec.duration!);
    if (spec.requests !== undefined) requests = requests.slice(0, spec.requests);
  }
  if (spec.abortFraction !== undefined) requests = withAborts(requests, spec.abortFraction, spec.abortAfter ?? 2, spec.seed);
  return requests;
}
