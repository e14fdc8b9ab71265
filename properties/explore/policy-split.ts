// `pdspec explore --policy FILE`: the split of a resize is not a fixed list but what the policy decides for
// the state the system is in. The policy sees the spec state as an Observation: its queues and KV usage are
// exact; the spec has no clock, so latencies are unobserved (NaN, count 0) and the arrival rate is nominal.
import type { Observation, Split } from '../../engine/policy-api.ts';
import type { LatencyModel } from '../../engine/policy-api.ts';
import type { System } from '../../spec/system.ts';

export interface SplitPolicy {
  name: string;
  decide(observation: Observation): { split?: Split };
}

const unobserved = { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, count: 0 };

export function observationOf(sys: System, model: LatencyModel, slo: { ttft: number; tpot: number }): Observation {
  const p = sys.partition[0].context;
  const promptLengths: number[] = [];
  let prefillTokens = 0;
  let decodeRequests = 0;
  let contextTokens = 0;
  for (const r of sys.requests) {
    const c = r.context;
    if (r.value === 'waiting' || r.value === 'prefilling') {
      promptLengths.push(c.prompt + c.generated);
      prefillTokens += c.prompt + c.generated - c.computed;
    } else if (r.value === 'decoding' || r.value === 'handedOff' || r.value === 'prefilled') {
      decodeRequests++;
      contextTokens += c.computed;
    }
  }
  let used = 0;
  for (const b of sys.blocks) if (b.value !== 'free') used++;
  return {
    time: 0,
    split: { prefill: p.prefill, decode: p.decode },
    shareRule: p.rule,
    prefillQueue: { requests: promptLengths.length, tokens: prefillTokens, promptLengths },
    decodeBatch: { requests: decodeRequests, contextTokens },
    kvUsage: used / sys.blocks.length,
    arrivalRate: 1,
    ttft: unobserved,
    tpot: unobserved,
    slo,
    model,
  };
}

/** The split the policy wants in this state, if it differs from the current one (then a resize may begin). */
export function policySplit(sys: System, policy: SplitPolicy, model: LatencyModel, slo: { ttft: number; tpot: number }): Split | null {
  const obs = observationOf(sys, model, slo);
  const split = policy.decide(obs).split;
  if (!split || (split.prefill === obs.split.prefill && split.decode === obs.split.decode)) return null;
  return split;
}
