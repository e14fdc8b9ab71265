// The fixed built-ins (static, unified, disaggregated) and the registry every name resolves through.
import { describe, expect, it } from 'vitest';
import { BUILTIN_POLICY_NAMES, loadPolicy, PolicyFault } from '../engine/policies/index.ts';
import { DISAGGREGATED_PLACEMENT } from '../engine/policies/disaggregated.ts';
import { UNIFIED_CHUNK_TOKENS } from '../engine/policies/unified.ts';
import { observation, percentiles } from './policy-observation.ts';

describe('built-in registry', () => {
  it('names the six built-ins; all but the Z14 variant run in-process by default', async () => {
    expect(BUILTIN_POLICY_NAMES).toEqual(['static', 'semi-pd', 'semi-pd-z14', 'nexus', 'unified', 'disaggregated']);
    for (const name of BUILTIN_POLICY_NAMES.filter((n) => n !== 'semi-pd-z14')) {
      const handle = await loadPolicy(name);
      expect(handle).toMatchObject({ name, source: 'built-in', isolated: false });
      await handle.close();
    }
  });

  it('a closed handle faults as unavailable instead of deciding', async () => {
    const handle = await loadPolicy('static');
    await handle.close();
    expect(() => handle.decide(observation())).toThrow(PolicyFault);
    expect(() => handle.decide(observation())).toThrow(/\(unavailable\)/);
  });
});

describe('static', () => {
  it('asks for its split until it runs with it, then keeps it whatever the pressure', async () => {
    const handle = await loadPolicy('static', { policyOptions: { split: '60:40' } });
    expect(handle.claimsMonotone).toBe(true);
    expect(handle.decide(observation({ split: { prefill: 80, decode: 100 } }))).toEqual({ split: { prefill: 60, decode: 40 } });
    const pressured = observation({ split: { prefill: 60, decode: 40 }, ttft: percentiles(30), tpot: percentiles(3), kvUsage: 0.99 });
    expect(handle.decide(pressured)).toEqual({});
  });

  it('accepts the split as an object, and without one keeps whatever split it is given', async () => {
    const fromObject = await loadPolicy('static', { policyOptions: { split: { prefill: 30, decode: 70 } } });
    expect(fromObject.decide(observation()).split).toEqual({ prefill: 30, decode: 70 });
    const keep = await loadPolicy('static');
    expect(keep.decide(observation({ split: { prefill: 7, decode: 100 } }))).toEqual({});
  });

  it('a split that breaks the exact rule is a fault at decision time, naming the rule', async () => {
    const handle = await loadPolicy('static', { policyOptions: { split: '80:100' } });
    expect(() => handle.decide(observation({ shareRule: 'exact', split: { prefill: 50, decode: 50 } }))).toThrow(/share-rule/);
  });
});

describe('unified and disaggregated', () => {
  it('unified never changes the split and serves prefill first come first served (chunk 1024 is the engine’s)', async () => {
    const handle = await loadPolicy('unified');
    expect(UNIFIED_CHUNK_TOKENS).toBe(1024);
    for (const obs of [observation(), observation({ ttft: percentiles(9), kvUsage: 0.95, shareRule: 'exact', split: { prefill: 50, decode: 50 } })]) {
      expect(handle.decide(obs)).toEqual({ prefillOrder: 'fcfs' });
    }
  });

  it('disaggregated holds 1P1D: prefill 100 on GPU 0, decode 100 on GPU 1', async () => {
    const handle = await loadPolicy('disaggregated');
    expect(DISAGGREGATED_PLACEMENT).toEqual({ prefillGpu: 0, decodeGpu: 1 });
    expect(handle.decide(observation({ split: { prefill: 80, decode: 100 } })).split).toEqual({ prefill: 100, decode: 100 });
    expect(handle.decide(observation({ split: { prefill: 100, decode: 100 }, ttft: percentiles(5) })).split).toBeUndefined();
    // Each share is a whole GPU, which only the oversubscribe rule can express.
    expect(() => handle.decide(observation({ shareRule: 'exact', split: { prefill: 50, decode: 50 } }))).toThrow(/share-rule/);
  });
});
