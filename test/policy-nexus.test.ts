// Nexus (engine/policies/nexus.ts): the greedy search meets its constraints in both KV modes, the shares sum
// to 100, prefill goes shortest prompt first, and hysteresis keeps it from flapping.
import { describe, expect, it } from 'vitest';
import type { Observation } from '../engine/policy-api.ts';
import { loadPolicy } from '../engine/policies/index.ts';
import { createNexus } from '../engine/policies/nexus.ts';
import { MODEL, observation } from './policy-observation.ts';

function nexusObservation(kvUsage: number, prefill: number, changes: Parameters<typeof observation>[0] = {}): Observation {
  return observation({ shareRule: 'exact', kvUsage, split: { prefill, decode: 100 - prefill }, ...changes });
}

const batch = { requests: 16, contextTokens: 16_000 };
const tokens = 4096;
const decodeAt = (x: number) => MODEL.decodeTime(100 - x, batch.requests, batch.contextTokens);
const prefillAt = (x: number) => MODEL.prefillTime(x, tokens);
const decodeFeasible = (x: number) => decodeAt(x) <= 1.1 * MODEL.decodeTime(100, batch.requests, batch.contextTokens);
const prefillFeasible = (x: number) => prefillAt(x) <= 1.3 * MODEL.prefillTime(100, tokens);

describe('nexus: the greedy search and its constraints', () => {
  it('KV < 70 %: the most prefill that keeps decode within 1.1 × its time at 100 %, shares summing to 100', () => {
    const chosen = new Set<number>();
    for (const start of [5, 30, 50, 95]) {
      const decision = createNexus().decide(nexusObservation(0.4, start));
      expect(decision.prefillOrder).toBe('shortest-prompt-first');
      const { prefill, decode } = decision.split ?? { prefill: start, decode: 100 - start };
      expect(prefill + decode).toBe(100);
      expect(decodeFeasible(prefill)).toBe(true);
      expect(decodeFeasible(prefill + 5)).toBe(false); // one more step (5 points) would break it
      chosen.add(prefill);
    }
    expect(chosen.size).toBe(1); // from above or below, the same point of the 5-point grid
  });

  it('KV ≥ 70 %: the most decode that keeps prefill within 1.3 × its minimum', () => {
    for (const start of [20, 50, 90, 99]) {
      const decision = createNexus().decide(nexusObservation(0.85, start));
      const { prefill, decode } = decision.split ?? { prefill: start, decode: 100 - start };
      expect(prefill + decode).toBe(100);
      expect(prefillFeasible(prefill)).toBe(true);
      expect(prefillFeasible(prefill - 5)).toBe(false);
    }
  });

  it('step 1 finds the exact boundary of each constraint', () => {
    const low = createNexus({ step: 1 }).decide(nexusObservation(0.4, 50)).split!;
    expect(decodeFeasible(low.prefill) && !decodeFeasible(low.prefill + 1)).toBe(true);
    const high = createNexus({ step: 1 }).decide(nexusObservation(0.9, 50)).split!;
    expect(prefillFeasible(high.prefill) && !prefillFeasible(high.prefill - 1)).toBe(true);
  });

  it('an unmeetable constraint ends at the bound (prefill 99), not in a loop', () => {
    const decision = createNexus({ prefillSlack: 1 }).decide(nexusObservation(0.9, 50));
    expect(decision.split).toEqual({ prefill: 99, decode: 1 });
  });

  it('nothing to price (empty queue and batch): the split is kept', () => {
    const idle = nexusObservation(0.1, 40, { prefillQueue: { requests: 0, tokens: 0, promptLengths: [] }, decodeBatch: { requests: 0, contextTokens: 0 } });
    expect(createNexus().decide(idle)).toEqual({ prefillOrder: 'shortest-prompt-first' });
  });

  it('every decision passes the exact share rule through loadPolicy', async () => {
    const handle = await loadPolicy('nexus');
    expect(handle.isolated).toBe(false); // trusted built-in: in-process
    for (const kv of [0.1, 0.5, 0.69, 0.7, 0.95]) {
      for (const prefill of [1, 33, 50, 99]) expect(() => handle.decide(nexusObservation(kv, prefill))).not.toThrow();
    }
    await handle.close();
  });
});

describe('nexus: hysteresis', () => {
  /** Runs KV usages through one policy, applying each decision, and returns the splits and mode per window. */
  function run(policyOptions: Record<string, unknown>, kvs: number[], startPrefill: number) {
    const policy = createNexus(policyOptions);
    let prefill = startPrefill;
    const trace: { prefill: number; mode: string | undefined }[] = [];
    for (const kv of kvs) {
      const decision = policy.decide(nexusObservation(kv, prefill));
      prefill = decision.split?.prefill ?? prefill;
      trace.push({ prefill, mode: policy.mode() });
    }
    return trace;
  }
  const changes = (trace: { prefill: number }[]) => trace.filter((t, i) => i > 0 && t.prefill !== trace[i - 1]!.prefill).length;

  it('KV oscillating around 70 % switches mode once and then holds the split', () => {
    const kvs = [0.69, ...Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 0.71 : 0.68))];
    const trace = run({}, kvs, 10);
    expect(trace[0]!.mode).toBe('prefill-first');
    expect(trace.slice(1).every((t) => t.mode === 'decode-first')).toBe(true);
    expect(changes(trace)).toBe(1);
    // Without the band it flaps every window: the band is what holds it.
    expect(changes(run({ kvHysteresis: 0 }, kvs, 10))).toBeGreaterThanOrEqual(11);
  });

  it('returns to prefill-first only below 65 %', () => {
    const trace = run({}, [0.75, 0.66, 0.651, 0.649], 80);
    expect(trace.map((t) => t.mode)).toEqual(['decode-first', 'decode-first', 'decode-first', 'prefill-first']);
  });

  it('a feasible split is kept unless the move gains at least minGain', () => {
    // From a feasible split at KV 90 %, step 1 can reach the constraint's boundary for some gain in decode time.
    let boundary = 99;
    while (prefillFeasible(boundary - 1)) boundary--;
    const start = Math.min(99, boundary + 4);
    const gain = 1 - decodeAt(boundary) / decodeAt(start); // the fraction by which decode time would fall
    expect(gain).toBeGreaterThan(0.01);
    const decide = (minGain: number) => createNexus({ step: 1, minGain }).decide(nexusObservation(0.9, start)).split;
    expect(decide(gain * 1.1)).toBeUndefined();
    expect(decide(gain * 0.9)).toEqual({ prefill: boundary, decode: 100 - boundary });
  });
});
