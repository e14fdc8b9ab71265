// Loading policies (engine/policies/index.ts): a user's module from a path, the example broken policies each
// giving its documented fault, every load error as one clear line, every decision rule enforced, and the
// per-decision cost of isolation measured.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Decision, Observation, Policy } from '../engine/policy-api.ts';
import { handleForPolicy, loadPolicy } from '../engine/policies/index.ts';
import queueBalance from '../examples/policies/queue-balance.ts';
import { faultOf, loadError } from './policy-faults.ts';
import { observation, percentiles, PROFILE } from './policy-observation.ts';

const EXAMPLES = resolve(import.meta.dirname, '../examples/policies');
const scratch = mkdtempSync(join(tmpdir(), 'pdspec-policies-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function module(name: string, source: string): string {
  const path = join(scratch, name);
  writeFileSync(path, source);
  return path;
}

describe('a user policy module from a path', () => {
  it('loads the good example (relative path, isolated by default) and its decisions follow the rules', async () => {
    const handle = await loadPolicy('examples/policies/queue-balance.ts', { cwd: resolve(EXAMPLES, '../..'), profile: PROFILE });
    try {
      expect(handle).toMatchObject({ name: 'queue-balance', isolated: true, claimsMonotone: true, interval: 1 });
      expect(handle.source).toBe(join(EXAMPLES, 'queue-balance.ts'));
      // Heavy prefill pressure moves the split towards prefill; heavy decode pressure towards decode.
      const prefillHeavy = handle.decide(observation({ shareRule: 'exact', split: { prefill: 50, decode: 50 }, ttft: percentiles(3) }));
      const decodeHeavy = handle.decide(observation({ shareRule: 'exact', split: { prefill: 50, decode: 50 }, tpot: percentiles(0.5) }));
      expect(prefillHeavy.split!.prefill).toBeGreaterThan(50);
      expect(decodeHeavy.split!.decode).toBeGreaterThan(50);
      expect(prefillHeavy.split!.prefill + prefillHeavy.split!.decode).toBe(100);
    } finally {
      await handle.close();
    }
  });

  it('passes options to a factory, and runs the same in-process', async () => {
    const obs = observation({ shareRule: 'exact', split: { prefill: 50, decode: 50 }, ttft: percentiles(50) });
    const isolated = await loadPolicy(join(EXAMPLES, 'queue-balance.ts'), { policyOptions: { minShare: 25 }, profile: PROFILE });
    const inProcess = await loadPolicy(join(EXAMPLES, 'queue-balance.ts'), { policyOptions: { minShare: 25 }, isolate: false });
    try {
      expect(inProcess.isolated).toBe(false);
      expect(isolated.decide(obs)).toEqual({ split: { prefill: 75, decode: 25 } });
      expect(inProcess.decide(obs)).toEqual(isolated.decide(obs));
    } finally {
      await Promise.all([isolated.close(), inProcess.close()]);
    }
  });

  it('an isolated policy loaded without a profile faults with the reason when it uses the model', async () => {
    const handle = await loadPolicy(join(EXAMPLES, 'queue-balance.ts'));
    try {
      const fault = faultOf(handle, observation());
      expect(fault.kind).toBe('threw');
      expect(fault.message).toMatch(/Observation\.model is not available .* pass loadPolicy\(\.\.\., \{ profile \}\)/);
    } finally {
      await handle.close();
    }
  });
});

describe('the good example keeps its monotonicity claim', () => {
  it('more prefill pressure never lowers its prefill share; more decode pressure never lowers decode', () => {
    const policy = queueBalance();
    interface Load {
      prefill: number;
      queued: number;
      arrivalRate: number;
      ttft: number;
      tpot: number;
      batch: number;
    }
    const base: fc.Arbitrary<Load> = fc.record({
      prefill: fc.integer({ min: 1, max: 99 }),
      queued: fc.integer({ min: 0, max: 64 }),
      arrivalRate: fc.double({ min: 0, max: 50, noNaN: true }),
      ttft: fc.double({ min: 0.01, max: 10, noNaN: true }),
      tpot: fc.double({ min: 0.001, max: 1, noNaN: true }),
      batch: fc.integer({ min: 0, max: 256 }),
    });
    const more = fc.double({ min: 1, max: 4, noNaN: true });
    const obsOf = (b: Load) =>
      observation({
        shareRule: 'exact',
        split: { prefill: b.prefill, decode: 100 - b.prefill },
        prefillQueue: { requests: b.queued, tokens: b.queued * 1024, promptLengths: Array<number>(b.queued).fill(1024) },
        decodeBatch: { requests: b.batch, contextTokens: b.batch * 1500 },
        arrivalRate: b.arrivalRate,
        ttft: percentiles(b.ttft),
        tpot: percentiles(b.tpot),
      });
    const prefillOf = (obs: Observation) => policy.decide(obs).split?.prefill ?? obs.split.prefill;
    fc.assert(
      fc.property(base, more, fc.integer({ min: 0, max: 6 }), (b, factor, dimension) => {
        const before = obsOf(b);
        const pressured = [
          obsOf({ ...b, queued: b.queued + Math.ceil(factor) }),
          obsOf({ ...b, arrivalRate: b.arrivalRate * factor + 0.1 }),
          obsOf({ ...b, ttft: b.ttft * factor }),
          { ...before, slo: { ...before.slo, ttft: before.slo.ttft / factor } },
          // decode pressure: the prefill share must not rise
          obsOf({ ...b, tpot: b.tpot * factor }),
          obsOf({ ...b, batch: b.batch + Math.ceil(factor) }),
          { ...before, slo: { ...before.slo, tpot: before.slo.tpot / factor } },
        ][dimension]!;
        if (dimension < 4) expect(prefillOf(pressured)).toBeGreaterThanOrEqual(prefillOf(before));
        else expect(prefillOf(pressured)).toBeLessThanOrEqual(prefillOf(before));
      }),
      { seed: 20240607, numRuns: 500 },
    );
  });
});

describe('the broken examples give their documented faults', () => {
  const broken = (name: string) => join(EXAMPLES, 'broken', name);
  const failingTtft = observation({ ttft: percentiles(3) });

  it.each([
    ['throws.ts', 'threw', /decide threw: calibration table has no row for 1024-token prompts/],
    ['returns-nan.ts', 'non-finite', /non-finite share: split\.prefill = NaN/],
    ['out-of-range.ts', 'out-of-range', /share out of range 1\.\.100: split\.prefill = 120/],
  ] as const)('%s → %s', async (file, kind, detail) => {
    for (const isolate of [true, false]) {
      const handle = await loadPolicy(broken(file), { isolate, profile: PROFILE });
      try {
        const fault = faultOf(handle, failingTtft);
        expect(fault.kind).toBe(kind);
        expect(fault.detail).toMatch(detail);
        expect(fault.message).toContain(`policy '${handle.name}' fault (${kind}) at t=10.000 s, split 80/100`);
        expect(fault.message).not.toContain('\n');
        expect(fault.observation.prefillQueue).toEqual({ requests: 4, tokens: 4096 });
      } finally {
        await handle.close();
      }
    }
  });

  it('hangs.ts → timeout: the infinite loop is stopped at the budget', async () => {
    const handle = await loadPolicy(broken('hangs.ts'), { profile: PROFILE, timeBudgetMs: 250 });
    try {
      const started = performance.now();
      const fault = faultOf(handle, failingTtft);
      expect(fault.kind).toBe('timeout');
      expect(fault.detail).toContain('no decision within its time budget of 250 ms');
      expect(performance.now() - started).toBeLessThan(2000);
      expect(faultOf(handle, failingTtft).kind).toBe('unavailable');
    } finally {
      await handle.close();
    }
  });

  it('non-monotone.ts: every decision is valid, but a longer queue lowers the prefill share (for M2)', async () => {
    const handle = await loadPolicy(broken('non-monotone.ts'));
    try {
      expect(handle.claimsMonotone).toBe(true);
      const withQueue = (requests: number) =>
        handle.decide(observation({ shareRule: 'exact', prefillQueue: { requests, tokens: requests * 1024 } })).split!.prefill;
      expect(withQueue(8)).toBe(70);
      expect(withQueue(9)).toBe(30);
    } finally {
      await handle.close();
    }
  });
});

describe('load errors: one line each', () => {
  it.each([
    ['an unknown name', () => loadError('semi_pd'), /^cannot load policy 'semi_pd': not a built-in policy \(static, semi-pd, .*\), not a path to a module \(.*\) and not a command \(exec:'python3 my_policy\.py'\)$/],
    ['a missing file', () => loadError('./nope/missing.ts'), /^cannot load policy '\.\/nope\/missing\.ts': file not found \(.*missing\.ts\)$/],
    ['a directory', () => loadError(scratch + '/'), /not a file/],
    ['no default export', () => loadError(module('named.ts', 'export const policy = { name: "x", decide: () => ({}) };\n')), /no default export \(it exports 'policy'\)/],
    ['a default export without decide', () => loadError(module('nodecide.ts', 'export default { name: "x" };\n')), /default export is not a Policy or a factory: policy 'x' has no 'decide' function/],
    ['a factory that throws', () => loadError(module('factory.ts', 'export default () => { throw new Error("needs a GPU"); };\n')), /its factory threw: needs a GPU/],
    ['a factory returning junk', () => loadError(module('junk.js', 'export default () => 42;\n')), /its factory did not return a Policy: expected a Policy object, got number/],
    ['a syntax error', () => loadError(module('syntax.ts', 'export default { name: "x", decide( };\n')), /^cannot load policy '.*syntax\.ts': the module failed to import: .*syntax\.ts:1:\d+: ERROR: Expected/],
    ['a bad interval', () => loadError(module('interval.ts', 'export default { name: "x", interval: -1, decide: () => ({}) };\n')), /'interval' must be a positive number of seconds, got -1/],
    ['options for a non-factory', () => loadError(module('plain.ts', 'export default { name: "x", decide: () => ({}) };\n'), { policyOptions: { a: 1 } }), /options were given \(a\) but the module exports a Policy/],
    ['a bad built-in option', () => loadError('static', { policyOptions: { split: '60-40' } }), /^cannot load policy 'static': option 'split' must be a split like "60:40"/],
    ['an unknown built-in option', () => loadError('nexus', { policyOptions: { kvTreshold: 0.5 } }), /unknown option 'kvTreshold' for policy 'nexus' \(known: kvThreshold/],
    ['a bad time budget', () => loadError('static', { timeBudgetMs: 0 }), /timeBudgetMs must be a positive number/],
    ['the Z14 variant in-process', () => loadError('semi-pd-z14', { isolate: false }), /known to hang .* runs only isolated/],
  ])('%s', async (_, load, message) => {
    const error = await load();
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('\n');
  });

  it('the same module errors in-process (isolate: false) read the same way', async () => {
    const named = module('named-inproc.ts', 'export const policy = 1;\n');
    expect((await loadError(named, { isolate: false })).message).toMatch(/no default export \(it exports 'policy'\)/);
    const syntax = module('syntax-inproc.ts', 'export default { name: "x", decide( };\n');
    const error = await loadError(syntax, { isolate: false });
    expect(error.message).toMatch(/^cannot load policy '.*syntax-inproc\.ts': the module failed to import: .*syntax-inproc\.ts:1:\d+: ERROR: Expected/);
    expect(error.message).not.toContain('\n');
  });

  it('a module loads from a path with spaces in it', async () => {
    mkdirSync(join(scratch, 'my policies'), { recursive: true });
    const path = module('my policies/keep.ts', 'export default { name: "keep", decide: () => ({}) };\n');
    const handle = await loadPolicy(path);
    expect(handle.decide(observation())).toEqual({});
    await handle.close();
  });
});

describe('the decision rules', () => {
  const policyReturning = (decision: unknown): Policy => ({ name: 'fixture', decide: () => decision as Decision });
  const exact = observation({ shareRule: 'exact', split: { prefill: 50, decode: 50 } });

  it.each([
    ['a non-integer share', { split: { prefill: 37.5, decode: 62.5 } }, 'non-integer', /non-integer share: split\.prefill = 37\.5/],
    ['an infinite share', { split: { prefill: 50, decode: Infinity } }, 'non-finite', /split\.decode = Infinity/],
    ['a zero share', { split: { prefill: 0, decode: 100 } }, 'out-of-range', /split\.prefill = 0/],
    ['a split not summing to 100 under exact', { split: { prefill: 60, decode: 50 } }, 'share-rule', /split 60\/50 breaks the exact share rule .* got 110/],
    ['undefined', undefined, 'malformed', /expected an object, got undefined \(return \{\} to keep the split\)/],
    ['a Promise', Promise.resolve({}), 'malformed', /got a Promise \(decide must be synchronous\)/],
    ['an unknown field', { splits: { prefill: 50, decode: 50 } }, 'malformed', /unknown field 'splits' \(allowed: split, prefillOrder\)/],
    ['a share as a string', { split: { prefill: '50', decode: 50 } }, 'malformed', /split\.prefill must be a number, got string "50"/],
    ['a bad prefill order', { prefillOrder: 'lifo' }, 'malformed', /prefillOrder must be 'fcfs' or 'shortest-prompt-first', got string "lifo"/],
  ])('%s → %s', (_, decision, kind, detail) => {
    const fault = faultOf(handleForPolicy(policyReturning(decision)), exact);
    expect(fault.kind).toBe(kind);
    expect(fault.detail).toMatch(detail);
  });

  it('valid decisions come back as plain copies', () => {
    const returned = { split: { prefill: 60, decode: 40 }, prefillOrder: 'fcfs' as const };
    const decision = handleForPolicy(policyReturning(returned)).decide(exact);
    expect(decision).toEqual(returned);
    returned.split.prefill = 1; // the policy changing its object afterwards does not change the decision
    expect(decision.split!.prefill).toBe(60);
  });

  it('oversubscribe allows shares summing past 100', () => {
    expect(handleForPolicy(policyReturning({ split: { prefill: 80, decode: 100 } })).decide(observation())).toEqual({ split: { prefill: 80, decode: 100 } });
  });

  it('in-process, an overrun is reported after the call returns', () => {
    const slow: Policy = {
      name: 'slow',
      decide() {
        const until = performance.now() + 30;
        while (performance.now() < until); // busy for 30 ms
        return {};
      },
    };
    const fault = faultOf(handleForPolicy(slow, { timeBudgetMs: 10 }), observation());
    expect(fault.kind).toBe('timeout');
    expect(fault.detail).toMatch(/took \d+\.\d ms, over its time budget of 10 ms/);
  });

  it('handleForPolicy rejects an object that is not a Policy', () => {
    expect(() => handleForPolicy({ name: 'x' } as unknown as Policy)).toThrow(/cannot load policy 'x': policy 'x' has no 'decide' function/);
  });
});

describe('the cost of isolation per decision', () => {
  it('counts every decision, in-process and isolated (the overhead itself is measured in bench/policy-overhead.ts)', async () => {
    const obs = observation();
    const measure = async (isolate: boolean) => {
      const handle = await loadPolicy('static', { isolate, profile: PROFILE });
      for (let i = 0; i < 200; i++) handle.decide(obs); // warm up
      const before = handle.stats();
      const n = 5000;
      for (let i = 0; i < n; i++) handle.decide(obs);
      const after = handle.stats();
      await handle.close();
      expect(after.decisions - before.decisions).toBe(n);
      return ((after.totalMs - before.totalMs) * 1000) / n;
    };
    const inProcessUs = await measure(false);
    const isolatedUs = await measure(true);
    expect(Number.isFinite(inProcessUs) && Number.isFinite(isolatedUs)).toBe(true);
  });
});
