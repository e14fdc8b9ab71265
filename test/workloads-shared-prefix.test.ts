// The shared-prefix workload generator (engine/workloads/shared-prefix.ts): system prompts shared with a
// skewed popularity, multi-turn conversations that extend their previous turn, parallel samples, and a mix
// between the two kinds. Seeded and deterministic; every request passes the workload validator; requests
// that name the same prefix agree on its tokens; bad options are refused with one clear line.
import { describe, expect, it } from 'vitest';
import { buildWorkload, WORKLOAD_NAMES } from '../engine/workloads/index.ts';
import { expectedTurns, sharedPrefix, SHARED_PREFIX_DEFAULTS, type SharedPrefixOptions } from '../engine/workloads/shared-prefix.ts';
import { normalise, WorkloadError, type WorkloadRequest } from '../engine/workloads/types.ts';

const turnOf = (r: WorkloadRequest) => Number(/-t(\d+)$/.exec(r.id)![1]);
const isTurn = (r: WorkloadRequest) => r.prefix!.id.startsWith('conv-');

function byPrefix(requests: readonly WorkloadRequest[]): Map<string, WorkloadRequest[]> {
  const groups = new Map<string, WorkloadRequest[]>();
  for (const r of requests) {
    const list = groups.get(r.prefix!.id) ?? [];
    list.push(r);
    groups.set(r.prefix!.id, list);
  }
  return groups;
}

describe('shared-prefix workload', () => {
  it('is deterministic per seed, and different seeds give different workloads', () => {
    const o: SharedPrefixOptions = { rate: 6, requests: 500, seed: 11, parallelFraction: 0.2 };
    expect(sharedPrefix(o)).toEqual(sharedPrefix({ ...o }));
    expect(sharedPrefix({ ...o, seed: 12 })).not.toEqual(sharedPrefix(o));
    // Independent streams: another output distribution keeps the system-prompt requests' arrivals and prefixes.
    const sys = (rs: WorkloadRequest[]) => rs.filter((r) => !isTurn(r)).map((r) => [r.arrival, r.prefix]);
    expect(sys(sharedPrefix({ ...o, mix: 0, output: { kind: 'fixed', value: 7 } }))).toEqual(sys(sharedPrefix({ ...o, mix: 0 })));
  });

  it('passes the workload validator: sorted by arrival, unique ids, prefix lengths in 1..prompt, n in 2..4', () => {
    const rs = sharedPrefix({ rate: 8, requests: 3000, seed: 3, parallelFraction: 0.3 });
    expect(rs).toHaveLength(3000);
    expect(normalise(rs, 'shared-prefix')).toEqual(rs); // checks every request, ids unique, and keeps the order
    for (const r of rs) {
      expect(r.prefix, r.id).toBeDefined();
      expect(Number.isInteger(r.prefix!.length) && r.prefix!.length >= 1 && r.prefix!.length <= r.prompt, r.id).toBe(true);
      expect(r.prompt, r.id).toBeLessThanOrEqual(SHARED_PREFIX_DEFAULTS.maxContext);
      if (r.n !== undefined) expect(r.n >= 2 && r.n <= 4, r.id).toBe(true);
    }
  });

  it('requests with the same prefix id agree on the shared tokens', () => {
    const rs = sharedPrefix({ rate: 10, requests: 4000, seed: 5, thinkTime: 3 });
    const groups = byPrefix(rs);
    let conversationsWithSeveralTurns = 0;
    for (const [id, group] of groups) {
      if (id.startsWith('sys-')) {
        // A system prompt has one length; every request's prompt is it plus a user part of ≥ 1 token.
        const lengths = new Set(group.map((r) => r.prefix!.length));
        expect(lengths.size, id).toBe(1);
        for (const r of group) expect(r.prompt, r.id).toBeGreaterThan(r.prefix!.length);
        continue;
      }
      expect(id).toMatch(/^conv-\d+$/);
      const turns = [...group].sort((a, b) => turnOf(a) - turnOf(b));
      expect(turns.map(turnOf), id).toEqual(turns.map((_, i) => i + 1)); // turns 1..T, none missing
      if (turns.length > 1) conversationsWithSeveralTurns++;
      for (let i = 0; i < turns.length; i++) {
        const cur = turns[i];
        // Each turn's whole prompt is the conversation's sequence (the transcript so far).
        expect(cur.prefix, cur.id).toEqual({ id, length: cur.prompt });
        if (i === 0) continue;
        const prev = turns[i - 1];
        // Turn k + 1 = turn k's prompt + its answer + a new user message: it starts with turn k's whole
        // declared prompt, so both agree on those positions of the sequence, and it arrives after turn k's
        // expected completion.
        expect(cur.prompt, cur.id).toBeGreaterThanOrEqual(prev.prompt + prev.output + 1);
        expect(cur.prefix!.length, cur.id).toBeGreaterThanOrEqual(prev.prefix!.length);
        const completion = prev.arrival + prev.prompt / SHARED_PREFIX_DEFAULTS.prefillRate + prev.output * SHARED_PREFIX_DEFAULTS.tpot;
        expect(cur.arrival, cur.id).toBeGreaterThanOrEqual(completion - 1e-9);
      }
    }
    expect(conversationsWithSeveralTurns).toBeGreaterThan(100);
  });

  it('system-prompt popularity follows the Zipf skew, roughly', () => {
    const rs = sharedPrefix({ rate: 20, requests: 30000, seed: 9, mix: 0, systemPrompts: 6, zipf: 1 });
    expect(rs.every((r) => r.prefix!.id.startsWith('sys-'))).toBe(true);
    const counts = [0, 1, 2, 3, 4, 5].map((k) => rs.filter((r) => r.prefix!.id === `sys-${k}`).length);
    const harmonic = [1, 2, 3, 4, 5, 6].reduce((s, k) => s + 1 / k, 0);
    for (let k = 0; k < 6; k++) expect(counts[k] / rs.length, `sys-${k}`).toBeCloseTo(1 / (k + 1) / harmonic, 1);
    expect(counts[0] / counts[1]).toBeGreaterThan(1.8);
    expect(counts[0] / counts[1]).toBeLessThan(2.2);
    // Zipf exponent 0 is uniform.
    const flat = sharedPrefix({ rate: 20, requests: 12000, seed: 9, mix: 0, systemPrompts: 4, zipf: 0 });
    for (let k = 0; k < 4; k++) expect(flat.filter((r) => r.prefix!.id === `sys-${k}`).length / flat.length).toBeCloseTo(0.25, 1);
  });

  it('the mix, the request rate and the turns per conversation come out as asked, roughly', () => {
    for (const mix of [0, 0.3, 0.8, 1]) {
      const rs = sharedPrefix({ rate: 10, duration: 2000, seed: 4, mix });
      const turns = rs.filter(isTurn).length / rs.length;
      expect(turns, `mix ${mix}`).toBeCloseTo(mix, 1);
      expect(rs.length / 2000, `rate at mix ${mix}`).toBeGreaterThan(9);
      expect(rs.length / 2000, `rate at mix ${mix}`).toBeLessThan(11);
    }
    // Turns: geometric with mean meanTurns (capped at maxTurns); single-turn share q = 1 / meanTurns.
    const rs = sharedPrefix({ rate: 10, duration: 4000, seed: 6, mix: 1, thinkTime: 0 });
    const lengths = [...byPrefix(rs).values()].map((g) => g.length);
    const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    expect(mean).toBeGreaterThan(expectedTurns(3.51, 32) - 0.3);
    expect(mean).toBeLessThan(expectedTurns(3.51, 32) + 0.3);
    expect(lengths.filter((n) => n === 1).length / lengths.length).toBeCloseTo(1 / 3.51, 1);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(32);
    expect(expectedTurns(1, 5)).toBe(1);
    expect(sharedPrefix({ rate: 10, requests: 200, seed: 1, mix: 1, meanTurns: 1 }).every((r) => turnOf(r) === 1)).toBe(true);
  });

  it('parallel samples: the asked fraction gets n in 2..maxSamples; none by default', () => {
    expect(sharedPrefix({ rate: 5, requests: 1000, seed: 2 }).some((r) => r.n !== undefined)).toBe(false);
    const rs = sharedPrefix({ rate: 5, requests: 5000, seed: 2, parallelFraction: 0.25, maxSamples: 3 });
    const forked = rs.filter((r) => r.n !== undefined);
    expect(forked.length / rs.length).toBeCloseTo(0.25, 1);
    expect(new Set(forked.map((r) => r.n))).toEqual(new Set([2, 3]));
  });

  it('a conversation ends when its next prompt would not fit the context window', () => {
    const rs = sharedPrefix({ rate: 5, requests: 2000, seed: 8, mix: 1, meanTurns: 20, maxContext: 2000, systemLen: { kind: 'fixed', value: 100 } });
    for (const r of rs) expect(r.prompt, r.id).toBeLessThanOrEqual(2000);
    const sys = sharedPrefix({ rate: 5, requests: 500, seed: 8, mix: 0, maxContext: 600, systemLen: { kind: 'fixed', value: 5000 } });
    for (const r of sys) {
      expect(r.prompt, r.id).toBeLessThanOrEqual(600);
      expect(r.prefix!.length, r.id).toBe(599); // clamped to leave one token for the user part
    }
  });

  it('requests and duration cut the workload: the first N by arrival, or arrivals before the horizon', () => {
    const long = sharedPrefix({ rate: 5, duration: 400, seed: 21 });
    const first = sharedPrefix({ rate: 5, requests: 300, seed: 21 });
    expect(first).toEqual(long.slice(0, 300));
    expect(long.every((r) => r.arrival < 400)).toBe(true);
    expect(sharedPrefix({ rate: 5, requests: 50, duration: 400, seed: 21 })).toEqual(long.slice(0, 50));
  });

  it('is a named workload: buildWorkload("shared-prefix"), with --prompt-len as the user message and --output-len', () => {
    expect(WORKLOAD_NAMES).toContain('shared-prefix');
    const rs = buildWorkload({ workload: 'shared-prefix', rate: 4, requests: 300, seed: 2, promptLen: 'fixed:10', outputLen: 'fixed:3' });
    expect(rs).toHaveLength(300);
    expect(rs.every((r) => r.output === 3)).toBe(true);
    for (const r of rs) if (!isTurn(r)) expect(r.prompt - r.prefix!.length, r.id).toBe(10);
    expect(buildWorkload({ workload: 'shared-prefix', seed: 2, requests: 100, sharedPrefix: { mix: 0 } }).every((r) => !isTurn(r))).toBe(true);
    expect(buildWorkload({ workload: 'shared-prefix', seed: 2 })).toHaveLength(1000);
    expect(buildWorkload({ workload: 'shared-prefix', seed: 2, duration: 30 }).every((r) => r.arrival < 30)).toBe(true);
  });

  it('refuses bad options with one clear line', () => {
    const base: SharedPrefixOptions = { rate: 5, requests: 10, seed: 1 };
    const cases: [Partial<SharedPrefixOptions> & Record<string, unknown>, RegExp][] = [
      [{ rate: -1 }, /rate must be a positive number/],
      [{ rate: 0 }, /rate must be a positive number/],
      [{ rate: Number.NaN }, /rate must be a positive number.*NaN/],
      [{ rate: Number.POSITIVE_INFINITY }, /rate must be a positive number/],
      [{ mix: -0.1 }, /mix must be a number in 0\.\.1, got -0\.1/],
      [{ mix: 1.5 }, /mix must be a number in 0\.\.1/],
      [{ mix: Number.NaN }, /mix must be a number in 0\.\.1, got NaN/],
      [{ parallelFraction: 2 }, /parallelFraction must be a number in 0\.\.1/],
      [{ systemPrompts: 0 }, /systemPrompts must be an integer ≥ 1, got 0/],
      [{ systemPrompts: 2.5 }, /systemPrompts must be an integer/],
      [{ zipf: -1 }, /zipf \(exponent\) must be a finite number ≥ 0/],
      [{ zipf: Number.NaN }, /zipf \(exponent\) must be a finite number/],
      [{ meanTurns: 0.5 }, /meanTurns must be a finite number ≥ 1/],
      [{ maxTurns: 0 }, /maxTurns must be an integer ≥ 1/],
      [{ thinkTime: -2 }, /thinkTime \(seconds\) must be a finite number ≥ 0/],
      [{ prefillRate: 0 }, /prefillRate \(tokens per second\) must be a finite number > 0/],
      [{ tpot: Number.NaN }, /tpot \(seconds per output token\) must be a finite number ≥ 0/],
      [{ maxContext: 1 }, /maxContext must be an integer ≥ 2/],
      [{ maxSamples: 1 }, /maxSamples must be an integer in 2\.\.16/],
      [{ maxSamples: 17 }, /maxSamples must be an integer in 2\.\.16/],
      [{ requests: 0 }, /requests must be an integer ≥ 1/],
      [{ requests: undefined }, /needs a number of requests or a duration/],
      [{ duration: -5 }, /duration must be a finite number > 0/],
      [{ seed: Number.NaN }, /seed must be a finite number/],
      [{ userLen: { kind: 'fixed', value: 0 } }, /userLen: fixed length must be an integer ≥ 1, got 0/],
      [{ output: { kind: 'uniform', min: 5, max: 2 } }, /output: uniform needs integers 1 ≤ min ≤ max/],
      [{ systemLen: { kind: 'lognormal', median: Number.NaN, sigma: 1, min: 1, max: 10 } }, /systemLen: lognormal needs median ≥ 1/],
      [{ systemLen: { kind: 'empirical', values: [], source: 'none' } }, /systemLen: empirical needs a non-empty list/],
      [{ requests: 3_000_000 }, /holds at most 2,000,000 requests/],
    ];
    for (const [bad, message] of cases) {
      const run = () => sharedPrefix({ ...base, ...bad } as SharedPrefixOptions);
      expect(run, JSON.stringify(bad)).toThrow(WorkloadError);
      expect(run, JSON.stringify(bad)).toThrow(message);
      expect(run, JSON.stringify(bad)).toThrow(/^shared-prefix workload: /);
    }
    expect(() => buildWorkload({ workload: 'shared-prefix', seed: 1, rate: -3 })).toThrow(/shared-prefix workload: rate must be a positive number/);
    expect(() => buildWorkload({ workload: 'shared-prefix', seed: 1, sharedPrefix: { mix: 7 } })).toThrow(/mix must be a number in 0\.\.1, got 7/);
  });
});
