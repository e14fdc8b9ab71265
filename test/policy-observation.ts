// Observations for the policy tests: a typical window of a semi-PD run, changed field by field.
import type { Observation, Percentiles } from '../engine/policy-api.ts';
import { latencyModel, loadProfile } from '../engine/profile.ts';

/** The engine's shipped Llama3-8B/H100 profile and its latency model (the profile goes to isolated policies). */
export const PROFILE = loadProfile('llama3-8b-h100');
export const MODEL = latencyModel(PROFILE);

export function percentiles(p90: number, count = 50): Percentiles {
  return { p50: p90 * 0.6, p90, p99: p90 * 1.5, count };
}

export type ObservationChanges = Partial<Omit<Observation, 'prefillQueue' | 'decodeBatch'>> & {
  prefillQueue?: Partial<Observation['prefillQueue']>;
  decodeBatch?: Partial<Observation['decodeBatch']>;
};

/** 4 prompts of 1024 tokens waiting, 16 decoding, 2 req/s, both SLOs met; `changes` override fields. */
export function observation(changes: ObservationChanges = {}): Observation {
  const base: Observation = {
    time: 10,
    split: { prefill: 80, decode: 100 },
    shareRule: 'oversubscribe',
    prefillQueue: { requests: 4, tokens: 4096, promptLengths: [1024, 1024, 1024, 1024] },
    decodeBatch: { requests: 16, contextTokens: 16_000 },
    kvUsage: 0.4,
    arrivalRate: 2,
    ttft: percentiles(0.5),
    tpot: percentiles(0.05),
    slo: { ttft: 1, tpot: 0.1 },
    model: MODEL,
  };
  return {
    ...base,
    ...changes,
    prefillQueue: { ...base.prefillQueue, ...changes.prefillQueue },
    decodeBatch: { ...base.decodeBatch, ...changes.decodeBatch },
  };
}
