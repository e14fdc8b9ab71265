// The policy interface: an observation of the serving system in, a decision out. Built-in policies and
// users' modules (`--policy ./my-policy.ts`) implement the same interface; docs/policy-api.md documents it.

/** A share split of one GPU's SMs, in percent. */
export interface Split {
  prefill: number;
  decode: number;
}

/** Latency percentiles over the policy's observation window, in seconds (NaN when nothing was observed). */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  /** Number of samples behind the percentiles. */
  count: number;
}

/** Service-level objectives, in seconds. */
export interface Slo {
  /** Time to first token. */
  ttft: number;
  /** Time per output token (mean inter-token time of a request). */
  tpot: number;
}

/**
 * Estimated step latencies for a phase at a share, from the executor's latency model (the calibrated
 * profile). Policies that search over splits (Nexus, semi-PD's Algorithm 1) use it as their cost model.
 */
export interface LatencyModel {
  /** Seconds for a prefill step computing `tokens` positions at `share` percent of the SMs. */
  prefillTime(share: number, tokens: number): number;
  /** Seconds for a decode step of `batch` requests with `contextTokens` cached tokens in all, at `share` percent. */
  decodeTime(share: number, batch: number, contextTokens: number): number;
}

export interface Observation {
  /** Virtual time in seconds. */
  time: number;
  split: Split;
  /** `oversubscribe`: each share in 1..100 (semi-PD, MPS); `exact`: prefill + decode = 100 (Nexus). */
  shareRule: 'oversubscribe' | 'exact';
  /** Requests waiting for prefill, and their prompt tokens still to compute. */
  prefillQueue: { requests: number; tokens: number; promptLengths: readonly number[] };
  /** Requests decoding, and their cached context tokens in all. */
  decodeBatch: { requests: number; contextTokens: number };
  /** Fraction of KV blocks in use, 0..1. */
  kvUsage: number;
  /** Requests per second over the window. */
  arrivalRate: number;
  ttft: Percentiles;
  tpot: Percentiles;
  slo: Slo;
  model: LatencyModel;
}

export interface Decision {
  /** The split to run with; omit (or return the current one) to keep it. A change is a resize. */
  split?: Split;
  /** Order of the prefill queue: first come first served, or shortest prompt first (Nexus). */
  prefillOrder?: 'fcfs' | 'shortest-prompt-first';
}

export interface Policy {
  /** Name shown in reports. */
  name: string;
  /** Whether the policy claims SLO monotonicity (property M3 is then required of it). */
  claimsMonotone?: boolean;
  /** Seconds of virtual time between decisions (default 1). */
  interval?: number;
  /** Called once per interval; must return within the time budget, with finite, in-range shares. */
  decide(observation: Observation): Decision;
}

/** What a policy module exports: `export default` a Policy, or a factory taking its options. */
export type PolicyModule = Policy | ((options: Record<string, unknown>) => Policy);
