// M1, the latency model (properties/monotonicity): every shipped profile keeps it, and models broken in
// one way each fail exactly the clause they break, with a counterexample narrowed to one step that
// replays exactly from its seed and path.
import { describe, expect, it } from 'vitest';
import type { LatencyModel } from '../engine/policy-api.ts';
import { latencyModel, loadProfile, profileNames } from '../engine/profile.ts';
import { checkLatencyModel, checkProfile, checkShippedProfiles, formatResult, M1_CLAUSES, type M1Clause } from '../properties/monotonicity/index.ts';

const good = latencyModel(loadProfile('llama3-8b-h100'));

describe('M1 on the shipped profiles', () => {
  it('holds for every profile in data/profiles, clause by clause', () => {
    const names = profileNames();
    expect(names.length).toBeGreaterThanOrEqual(2);
    const results = checkShippedProfiles({ numRuns: 200 });
    expect(results.map((r) => r.subject)).toEqual(names.map((n) => `profile '${n}'`));
    for (const result of results) {
      expect(result.holds, formatResult(result)).toBe(true);
      expect(result.clauses.map((c) => c.clause)).toEqual([...M1_CLAUSES]);
      expect(result.runs).toBe(M1_CLAUSES.length * 200);
      expect(result.counterexample).toBeUndefined();
    }
  });

  it('a passing check replays as the same run: the replay command names the profile, seed and clauses', () => {
    const result = checkProfile('llama3-8b-a100', { numRuns: 50, seed: 7 });
    expect(result.replay).toContain(`npx pdspec monotonicity M1 llama3-8b-a100 '{"seed":7,"numRuns":50,`);
    expect(checkProfile('llama3-8b-a100', result.replayOptions as object)).toEqual(result);
  });
});

// Each model is the shipped one with one defect; the clause it must fail and the step it must be narrowed to.
const broken: [string, LatencyModel, M1Clause, RegExp][] = [
  [
    'prefill slows down past 64 % (a contention bug)',
    { ...good, prefillTime: (s, n) => good.prefillTime(Math.min(s, 64), n) * (s > 64 ? 1 + (s - 64) / 1000 : 1) },
    'prefill-share',
    /^prefill time rose with the prefill share: prefillTime\(64, 1\) = .* s, prefillTime\(65, 1\) = .* s \(\+0\.1 %\)$/,
  ],
  [
    'decode priced on the mean context per request (a bigger batch looks cheaper)',
    { ...good, decodeTime: (s, b, c) => (b > 0 ? good.decodeTime(s, 1, c / b) : 0) },
    'decode-work',
    /^decode time fell with a bigger batch: decodeTime\(1, 1, 2\) = .* s, decodeTime\(1, 2, 2\) = .* s/,
  ],
  [
    'a speed-up growing with the square of the share (convex)',
    { ...good, prefillTime: (s, n) => (n > 0 ? (0.001 * n) / (s * s) : 0) },
    'prefill-concave',
    /^prefill speed-up is not concave at share 1: the gain 2→3 \(5000\/s\) exceeds the gain 1→2 \(3000\/s\)$/,
  ],
  [
    'NaN at the full GPU',
    { ...good, decodeTime: (s, b, c) => (s === 100 ? Number.NaN : good.decodeTime(s, b, c)) },
    'decode-share',
    /^decodeTime\(100, \d+, \d+\) = NaN: a step time must be a finite number ≥ 0$/,
  ],
];

describe('M1 catches broken models', () => {
  it.each(broken)('%s: fails %s with the smallest step', (_, model, clause, summary) => {
    const result = checkLatencyModel(model, { name: 'broken' });
    expect(result.holds).toBe(false);
    expect(result.counterexample!.clause).toBe(clause);
    expect(result.counterexample!.summary).toMatch(summary);
    // The replay names the failing clause, the seed and the shrunk case's path.
    expect(result.replayOptions).toMatchObject({ clauses: [clause], seed: result.seed, path: result.counterexample!.path });
  });

  it('only the broken clause fails when the defect is in one phase', () => {
    const [, model] = broken[1]!;
    const result = checkLatencyModel(model);
    expect(result.clauses.filter((c) => !c.holds).map((c) => c.clause)).toEqual(['decode-work']);
  });

  it('a failing check replays to the same counterexample from its seed and path', () => {
    const [, model] = broken[0]!;
    const first = checkLatencyModel(model);
    const again = checkLatencyModel(model, first.replayOptions as object);
    expect(again.counterexample).toEqual(first.counterexample);
    expect(again.runs).toBe(1); // the path goes straight to the shrunk case
    expect(first.counterexample!.lines).toContain('narrowed from the generated pair prefillTime(62, 1) → prefillTime(89, 1)');
  });

  it('different seeds explore differently but are each deterministic', () => {
    const [, model] = broken[0]!;
    const a = checkLatencyModel(model, { seed: 1, clauses: ['prefill-share'] });
    const b = checkLatencyModel(model, { seed: 1, clauses: ['prefill-share'] });
    expect(b).toEqual(a);
    expect(a.counterexample!.summary).toContain('prefillTime(64, 1)');
  });
});
