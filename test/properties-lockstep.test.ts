// The lockstep property campaign as vitest properties: random workloads, aborts and resize storms run
// through the engine in lockstep with the spec. The number of runs is a setting: PDSPEC_RUNS (short in
// `npm test`, long in `npm run campaign`). A failure prints fast-check's seed and path, and the replay.
import fc from 'fast-check';
import { test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { handleForPolicy, PolicyFault } from '../engine/policies/index.ts';
import { failureTrace, replayOf, runCampaign } from '../properties/campaign.ts';
import { asFastCheckCommand, finish, LockstepFailure, preemptionCascade, start } from '../properties/lockstep.ts';
import { abortCommand, modes, resizeCommand, runCommand, scenario } from '../properties/scenario.ts';
import { checkText } from '../spec/checker.ts';

const RUNS = Number(process.env.PDSPEC_RUNS ?? 150);
const commands = fc.commands([runCommand, abortCommand, resizeCommand].map((a) => a.map(asFastCheckCommand)), { maxCommands: 12 });

describe('the engine in lockstep with the spec', () => {
  test.prop([scenario(modes), commands], { numRuns: RUNS, seed: Number(process.env.PDSPEC_SEED ?? 20261127) })(
    'every event allowed, every invariant held, the observable state agreed; then quiescence, no stall, no cascade, output invariance',
    (sc, cmds) => {
      const both = start(sc);
      fc.modelRun(() => ({ model: both, real: both }), cmds);
      finish(both.judge, both.run);
    },
  );
});

/** 300 runs of the campaign, for what they cover (run once, read by two tests). */
let covered: ReturnType<typeof runCampaign> | null = null;
const coverageRuns = () => (covered ??= runCampaign({ seed: 5, runs: 300 }));

describe('shared KV in the campaign', () => {
  it('about half the runs share KV, and between them they hit, evict, fork and copy on write', () => {
    const result = coverageRuns();
    expect(result.ok, result.failure?.message).toBe(true);
    const s = result.sharing;
    expect(s.runs).toBeGreaterThan(100);
    expect(s.runs).toBeLessThan(200);
    expect(s.hits).toBeGreaterThan(20);
    expect(s.evictions).toBeGreaterThan(0);
    expect(s.forks).toBeGreaterThan(20);
    expect(s.copies).toBeGreaterThan(0);
  });
});

describe('speculative decoding in the campaign', () => {
  it('about half the runs write trace v3 or v4: drafts verified (the oracle drafter) with acceptances and rejections, windowed blocks freed by live requests, state slots taken, core-attention tasks read back and servers lost; every property holds', () => {
    const result = coverageRuns();
    expect(result.ok, result.failure?.message).toBe(true);
    const s = result.speculative;
    expect(s.runs).toBeGreaterThan(100);
    expect(s.runs).toBeLessThan(220);
    expect(s.windowFrees).toBeGreaterThan(100);
    expect(s.slotAllocs).toBeGreaterThan(20);
    expect(s.tasks).toBeGreaterThan(50);
    expect(s.serverLosses).toBeGreaterThan(0);
    expect(s.verifies).toBeGreaterThan(100);
    expect(s.accepted).toBeGreaterThan(50);
    expect(s.rejections).toBeGreaterThan(50);
    expect(s.accepted).toBeLessThan(s.drafted);
  });
});

describe('the campaign finds a broken engine, shrinks it and replays it', () => {
  it('a double release (bug zoo Z12) is caught as FreeListUnique, and the printed replay reproduces it exactly', () => {
    const faults = { releaseBlockTwice: true, duplicateRelease: true };
    const first = runCampaign({ seed: 11, runs: 300, faults });
    expect(first.ok).toBe(false);
    const f = first.failure!;
    expect(f.property).toBe('FreeListUnique');
    expect(f.scenario.workload.length).toBeLessThanOrEqual(2);
    // The trace the campaign writes is rejected by the reference spec with the same rule.
    const verdict = checkText(failureTrace(f, 'replay').join('\n'));
    expect(verdict.verdict === 'violation' && verdict.finding.rule).toBe('FreeListUnique');
    // Replay: the seed, path and replay path printed give back the same counterexample.
    const replay = replayOf(f.seed, f.path, f.replayPath, modes, 'x');
    expect(replay).toContain(`--path ${f.path}`);
    const again = runCampaign({ seed: f.seed, runs: 1, path: f.path, replayPath: f.replayPath, faults });
    expect(again.failure?.property).toBe(f.property);
    expect(again.failure?.events).toEqual(f.events);
    expect(again.failure?.commands).toEqual(f.commands);
  });
});

describe('NoPreemptionCascade', () => {
  it('holds when each victim is freed before the next, fails when a worker retracts twice without a free between', () => {
    const ev = (e: object) => ({ t: 0, ...e }) as never;
    expect(preemptionCascade([ev({ ev: 'preempt', req: 'a', worker: 'D0' }), ev({ ev: 'free', req: 'a', blocks: [1] }), ev({ ev: 'preempt', req: 'b', worker: 'D0' })])).toBeNull();
    expect(preemptionCascade([ev({ ev: 'preempt', req: 'a', worker: 'D0' }), ev({ ev: 'preempt', req: 'b', worker: 'D0' })])).toMatch(/D0 retracted b while the blocks of its previous victim a/);
  });

  it('a LockstepFailure names its property and family', () => {
    const e = new LockstepFailure('NoStall', 'Liveness', 'stuck', [], {} as never);
    expect([e.property, e.family, e.message]).toEqual(['NoStall', 'Liveness', 'NoStall: stuck']);
  });
});

describe('a campaign with a policy that faults', () => {
  it('stops with the PolicyFault (bad input for the caller), not an engine crash or a property failure', () => {
    const policy = handleForPolicy({ name: 'throws-on-queue', decide: (o) => { if (o.prefillQueue.requests > 0) throw new Error('boom'); return {}; } });
    let thrown: unknown;
    try {
      runCampaign({ seed: 3, runs: 50, modes: ['semi-pd'], policy });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PolicyFault);
    expect((thrown as PolicyFault).kind).toBe('threw');
    expect((thrown as Error).message).toMatch(/decide threw: boom/);
  });
});
