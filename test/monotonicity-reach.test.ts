// M2's reach: observations at the load the engine really serves (measured, not assumed), and decisions that
// must be a function of history and observation (the `deterministic` clause).
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Decision, Policy } from '../engine/policy-api.ts';
import { latencyModel, loadProfile } from '../engine/profile.ts';
import { checkPolicy, checkPolicyPressure, formatResult, subjectOf } from '../properties/monotonicity/index.ts';
import { BEYOND, loadEnvelope, measureLoadEnvelope } from '../properties/monotonicity/load-envelope.ts';
import { LOAD_SCALE, observationOf, observationSpec, SMALL_SCALE } from '../properties/monotonicity/observation.ts';

const ROOT = resolve(import.meta.dirname, '..');
const model = latencyModel(loadProfile());

function pdspec(...args: string[]) {
  const r = spawnSync(process.execPath, [resolve(ROOT, 'bin/pdspec.js'), ...args], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the load envelope: where the engine really is', () => {
  it('the shipped envelope is what the engine reaches now (measure again: the same numbers)', () => {
    expect(measureLoadEnvelope()).toEqual(loadEnvelope());
  });

  it('past capacity the engine queues far beyond a dozen short prompts (what M2 generated before)', () => {
    const { maxima } = loadEnvelope();
    expect(maxima.queueRequests).toBeGreaterThan(10 * SMALL_SCALE.queueRequests);
    expect(maxima.queueTokens).toBeGreaterThan(10 * SMALL_SCALE.queueRequests * SMALL_SCALE.promptTokens);
    expect(maxima.arrivalRate * 10).toBeGreaterThan(SMALL_SCALE.arrivalTenths);
    expect(maxima.ttftP99 * 1000).toBeGreaterThan(SMALL_SCALE.ttftMs);
  });

  it(`generated observations reach ${BEYOND}× the envelope in every field the engine pushes`, () => {
    const { maxima } = loadEnvelope();
    const seen = { queueRequests: 0, queueTokens: 0, promptTokens: 0, batchRequests: 0, contextTokens: 0, arrivalRate: 0, ttftP99: 0, samples: 0 };
    for (const spec of fc.sample(observationSpec(['oversubscribe', 'exact']), { seed: 1, numRuns: 2000 })) {
      const o = observationOf(spec, model, 1);
      seen.queueRequests = Math.max(seen.queueRequests, o.prefillQueue.requests);
      seen.queueTokens = Math.max(seen.queueTokens, o.prefillQueue.tokens);
      seen.promptTokens = Math.max(seen.promptTokens, ...o.prefillQueue.promptLengths);
      seen.batchRequests = Math.max(seen.batchRequests, o.decodeBatch.requests);
      seen.contextTokens = Math.max(seen.contextTokens, o.decodeBatch.contextTokens);
      seen.arrivalRate = Math.max(seen.arrivalRate, o.arrivalRate);
      if (o.ttft.count > 0) seen.ttftP99 = Math.max(seen.ttftP99, o.ttft.p99);
      seen.samples = Math.max(seen.samples, o.ttft.count, o.tpot.count);
    }
    for (const [field, value] of Object.entries(seen)) expect(value, field).toBeGreaterThanOrEqual(maxima[field as keyof typeof seen]);
    // And the scale itself is BEYOND times the envelope (rounded up to its units).
    expect(LOAD_SCALE.queueRequests).toBeGreaterThanOrEqual(BEYOND * maxima.queueRequests);
    expect(LOAD_SCALE.arrivalTenths).toBeGreaterThanOrEqual(BEYOND * maxima.arrivalRate * 10);
  });

  it('a policy that misbehaves only past 200,000 queued tokens is refuted, at its threshold', async () => {
    const result = await checkPolicy('examples/policies/broken/sheds-under-load.ts');
    expect(result.holds).toBe(false);
    const cx = result.counterexample!;
    expect(cx.clause).toBe('prefill');
    const { o, oPrime, shares } = cx.data as { o: { prefillQueue: { tokens: number } }; oPrime: { prefillQueue: { tokens: number } }; shares: number[] };
    // Beyond anything a dozen 4096-token prompts can queue: the old generator could not have asked this.
    expect(oPrime.prefillQueue.tokens).toBeGreaterThan(SMALL_SCALE.queueRequests * SMALL_SCALE.promptTokens);
    expect(o.prefillQueue.tokens).toBeLessThanOrEqual(200_000);
    expect(oPrime.prefillQueue.tokens).toBeGreaterThan(200_000);
    expect(shares[1]).toBe(30);
  });
});

describe('the deterministic clause: a decision is a function of history and observation', () => {
  const randomSplit = (): Policy => ({ name: 'random', decide: (): Decision => ({ split: { prefill: 40 + Math.floor(Math.random() * 21), decode: 100 } }) });
  const perInstanceCounter = (): Policy => {
    let calls = 0;
    return { name: 'per-instance', decide: (): Decision => ({ split: { prefill: ++calls % 2 === 1 ? 60 : 40, decode: 100 } }) };
  };
  let shared = 0;
  const sharedCounter = (): Policy => ({ name: 'shared-counter', decide: (): Decision => ({ split: { prefill: ++shared % 2 === 1 ? 60 : 40, decode: 100 } }) });
  const readsClock = (): Policy => ({ name: 'reads-clock', decide: (): Decision => ({ split: { prefill: Date.now() % 2 === 0 ? 60 : 50, decode: 100 } }) });

  it.each([
    ['randomness', randomSplit],
    ['state shared between instances', sharedCounter],
    ['the wall clock', readsClock],
  ])('a policy that reads %s is refuted, and the other clauses are not blamed first', (_what, make) => {
    const result = checkPolicyPressure(subjectOf(make), { shareRules: ['oversubscribe'] });
    expect(result.holds).toBe(false);
    expect(result.counterexample!.clause).toBe('deterministic');
    expect(result.counterexample!.summary).toMatch(/the same observation got two decisions/);
    expect(result.replayOptions.clauses).toEqual(['deterministic']);
  });

  it('state kept in its own instance is not nondeterminism: fresh instances fed the same history agree', () => {
    const result = checkPolicyPressure(subjectOf(perInstanceCounter), { shareRules: ['oversubscribe'] });
    expect(result.clauses.find((c) => c.clause === 'deterministic')!.holds, formatResult(result)).toBe(true);
  });

  it('a pressure counterexample says whether it reproduced on two more fresh instances', () => {
    const flaky = (): Policy => ({
      name: 'flaky-shed',
      decide: (o): Decision => ({ split: { prefill: o.prefillQueue.requests > 3 && Math.random() < 0.5 ? 30 : 80, decode: 100 } }),
    });
    const result = checkPolicyPressure(subjectOf(flaky), { clauses: ['prefill'], components: ['queue'], shareRules: ['oversubscribe'], seed: 3 });
    expect(result.holds).toBe(false);
    expect(result.counterexample!.lines.at(-1)).toMatch(/^asked again of two more fresh instances/);
    const stable = checkPolicyPressure(subjectOf(() => ({ name: 'shed', decide: (o): Decision => ({ split: { prefill: o.prefillQueue.requests > 3 ? 30 : 80, decode: 100 } }) })), {
      clauses: ['prefill'],
      components: ['queue'],
      shareRules: ['oversubscribe'],
    });
    expect(stable.counterexample!.lines.at(-1)).toBe('asked again of two more fresh instances: the same two decisions');
  });

  it('through the CLI, a user module that draws random numbers fails M2 (exit 1) on clause deterministic', () => {
    const r = pdspec('monotonicity', 'M2', 'test/fixtures/policies/random-split.ts', '--json');
    expect(r.status, r.stderr).toBe(1);
    expect((JSON.parse(r.stdout) as { counterexample: { clause: string } }).counterexample.clause).toBe('deterministic');
  });

  it('through the CLI, a factory whose instances share module state fails M2 on clause deterministic, and its replay (a fresh process: the same hidden state again) is exact', () => {
    const first = pdspec('monotonicity', 'M2', 'test/fixtures/policies/shared-counter.ts', '--json');
    expect(first.status, first.stderr).toBe(1);
    const result = JSON.parse(first.stdout) as { counterexample: { clause: string; data: unknown }; replayOptions: Record<string, unknown> };
    expect(result.counterexample.clause).toBe('deterministic');
    const again = pdspec('monotonicity', 'M2', 'test/fixtures/policies/shared-counter.ts', JSON.stringify(result.replayOptions), '--json');
    expect(again.status).toBe(1);
    expect((JSON.parse(again.stdout) as typeof result).counterexample).toEqual(result.counterexample);
  });

  it('through the CLI, a policy that reads the wall clock fails M2 on clause deterministic', () => {
    const r = pdspec('monotonicity', 'M2', 'test/fixtures/policies/reads-clock.ts');
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/counterexample \(deterministic,/);
  });
});
