// M3's inputs: small workloads (tens of requests, so that a simulate() takes milliseconds) and the system
// configuration around them, in small integers that shrink towards fewer requests, shorter prompts and
// outputs, arrivals together, and then the smallest pool and the tightest SLOs that still show a failure.
import fc from 'fast-check';
import type { WorkloadRequest } from '../../engine/workloads/types.ts';

/** One request: its gap after the previous arrival (ms), prompt and output lengths. */
export interface RequestSpec {
  gapMs: number;
  prompt: number;
  output: number;
}

/** The system a workload runs on: KV blocks, SLOs in ms, extra SMs over the profile's. */
export interface SystemSpec {
  blocks: number;
  sloTtftMs: number;
  sloTpotMs: number;
}

/** A prompt of 16..2048 tokens (multiples of 16: one block of the default size each step). */
export const promptTokens = fc.integer({ min: 1, max: 128 }).map((k) => 16 * k);
/** An output of 1..64 tokens. */
export const outputTokens = fc.integer({ min: 1, max: 64 });
/** Milliseconds after the previous arrival; 0 (together) is what shrinking aims for. */
export const arrivalGap = fc.integer({ min: 0, max: 1500 });

export const requestSpec: fc.Arbitrary<RequestSpec> = fc.record({ gapMs: arrivalGap, prompt: promptTokens, output: outputTokens });

/** 1..maxRequests requests. */
export function workloadSpec(maxRequests: number): fc.Arbitrary<RequestSpec[]> {
  return fc.array(requestSpec, { minLength: 1, maxLength: maxRequests });
}

/**
 * KV blocks (of 16 tokens by default), and SLOs around what the cost model gives a lightly loaded H100:
 * a 1k-token prompt prefills in ≈ 40 ms and a decode step takes ≈ 10 ms, so the SLOs range from tight to loose.
 */
export const systemSpec: fc.Arbitrary<SystemSpec> = fc.record({
  blocks: fc.integer({ min: 8, max: 400 }),
  sloTtftMs: fc.integer({ min: 20, max: 3000 }),
  sloTpotMs: fc.integer({ min: 5, max: 100 }),
});

/** The engine's workload: ids r0, r1, … in arrival order. */
export function workloadOf(specs: readonly RequestSpec[]): WorkloadRequest[] {
  let t = 0;
  return specs.map((r, i) => {
    t += r.gapMs;
    return { id: `r${i}`, arrival: t / 1000, prompt: r.prompt, output: r.output };
  });
}

/** "r0 @0 s 16+1, r1 @0.2 s 32+4" — arrival, prompt + output tokens. */
export function describeWorkload(workload: readonly WorkloadRequest[]): string {
  return workload.map((r) => `${r.id} @${Number(r.arrival.toFixed(3))} s ${r.prompt}+${r.output}`).join(', ');
}
