// The explorer: the reference spec verifies clean at the default bound, every variant is refuted with a
// shortest counterexample that `pdspec conform` rejects with the same rule, symmetry reduction and the
// one-step allocation under the lock do not change verdicts, and deadlock and starvation are found where
// they were built in.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type ExploreConfig } from '../properties/explore/config.ts';
import { counterexampleLines } from '../properties/explore/counterexample.ts';
import { stateKey } from '../properties/explore/canonical.ts';
import { explore, initialNode, successor } from '../properties/explore/explorer.ts';
import { proposals, type Node } from '../properties/explore/generator.ts';
import { SAFETY_VARIANTS, VARIANTS } from '../properties/explore/variants.ts';
import { checkText } from '../spec/checker.ts';

const config = (over: Partial<ExploreConfig> = {}): ExploreConfig => ({ ...DEFAULT_CONFIG, ...over });

describe('the reference spec', () => {
  it('verifies clean at the default bound (3 requests, 6 blocks, one resize, aborts and preemption)', () => {
    const r = explore(config());
    expect(r.verdict).toBe('verified');
    expect(r.states).toBeGreaterThan(100_000);
    // Every event the semi-PD spec knows happens at this bound, except the transfers of disaggregation and
    // the three allocation steps that the lock makes one.
    expect(r.neverEnabled.sort()).toEqual(['alloc_commit', 'alloc_query', 'alloc_take', 'transfer_begin', 'transfer_end']);
  }, 300_000);

  it('verifies clean in the other modes and allocator', () => {
    for (const over of [
      { mode: 'unified', resizes: 0 },
      { mode: 'disaggregated', resizes: 0, requests: 2, blocks: 4 },
      { mode: 'nexus', splits: [{ prefill: 70, decode: 30 }], requests: 2 },
      { allocator: 'decode-owned', requests: 2 },
      { allocSteps: 'three', requests: 2 },
    ] as Partial<ExploreConfig>[]) {
      const r = explore(config(over));
      expect(r.verdict, JSON.stringify(over) + JSON.stringify(r.finding)).toBe('verified');
    }
  }, 300_000);
});

describe('spec variants are refuted at the default bound', () => {
  it.each(SAFETY_VARIANTS)('%s', (name) => {
    const r = explore(config({ variant: name }));
    expect(r.verdict).toBe('violated');
    const f = r.finding!;
    expect(f.rule).toBe(VARIANTS[name].expect);
    // The counterexample, written as a trace, is rejected by the reference spec with the same rule.
    const verdict = checkText(counterexampleLines(r.config, f, `npx pdspec explore --variant ${name}`).join('\n'));
    expect(verdict.verdict).toBe('violation');
    if (verdict.verdict === 'violation') expect(verdict.finding.rule).toBe(f.rule);
    // Breadth-first: no shorter path breaks it (a variant bounded one event shorter verifies nothing new).
    expect(f.trace.length).toBe(r.depth);
  }, 120_000);
});

describe('reductions do not change verdicts', () => {
  const small = { requests: 2, blocks: 4, resizes: 0, aborts: 1, preemptions: 1 };

  it.each([null, ...SAFETY_VARIANTS])('symmetry on and off agree (%s)', (variant) => {
    const on = explore(config({ ...small, variant }));
    const off = explore(config({ ...small, variant, symmetry: false }));
    expect(on.verdict).toBe(off.verdict);
    expect(on.finding?.rule).toBe(off.finding?.rule);
    expect(on.finding?.trace.length).toBe(off.finding?.trace.length);
    if (variant === null) expect(on.states).toBeLessThan(off.states);
  }, 120_000);

  it('the key names workers by id: the order in which a resize started its new workers is forgotten', () => {
    const cfg = config({ requests: 1, resizes: 1, aborts: 0, preemptions: 0 });
    const take = (node: Node, pick: (ev: ReturnType<typeof proposals>[number]) => boolean): Node => {
      const ev = proposals(node, cfg, null).find(pick);
      expect(ev, 'the event is proposed').toBeDefined();
      return successor(node, ev!)!;
    };
    const start = (id: string) => (ev: ReturnType<typeof proposals>[number]) => ev.ev === 'worker_start' && ev.worker === id;
    let resizing = take(initialNode(cfg, null), (ev) => ev.ev === 'arrive');
    resizing = take(resizing, (ev) => ev.ev === 'resize_begin');
    const prefillFirst = take(take(resizing, start('P1')), start('D1'));
    const decodeFirst = take(take(resizing, start('D1')), start('P1'));
    expect(prefillFirst.sys.workerIds).not.toEqual(decodeFirst.sys.workerIds);
    for (const symmetry of [true, false]) expect(stateKey(prefillFirst, symmetry)).toBe(stateKey(decodeFirst, symmetry));
    // Not every pair of states merges: one new worker started is not both.
    expect(stateKey(take(resizing, start('P1')), false)).not.toBe(stateKey(take(resizing, start('D1')), false));
  });

  it('allocation in one step under the lock agrees with the three steps', () => {
    for (const over of [{}, { allocator: 'decode-owned' }] as Partial<ExploreConfig>[]) {
      const one = explore(config({ ...small, resizes: 1, ...over, allocSteps: 'one' }));
      const three = explore(config({ ...small, resizes: 1, ...over, allocSteps: 'three' }));
      expect(one.verdict).toBe('verified');
      expect(three.verdict).toBe('verified');
    }
  }, 120_000);
});

describe('liveness', () => {
  it('finds a deadlock where the KV pool is too small and nothing is preempted', () => {
    const r = explore(config({ requests: 3, blocks: 3, resizes: 0, aborts: 0, preemptions: 0 }));
    expect(r.verdict).toBe('violated');
    expect(r.finding?.kind).toBe('deadlock');
    expect(r.finding?.message).toMatch(/decoding/);
    // One block more and every request finishes.
    expect(explore(config({ requests: 3, blocks: 4, resizes: 0, aborts: 0, preemptions: 0 })).verdict).toBe('verified');
  });

  it('finds starvation in a fair cycle of retractions, and none in the reference spec', () => {
    const bound = { requests: 2, blocks: 3, chunk: 1, resizes: 0, aborts: 0 };
    const r = explore(config({ ...bound, variant: 'preemption-cascade' }));
    expect(r.finding?.kind).toBe('starvation');
    expect(r.finding?.cycle).toBeGreaterThan(0);
    const events = r.finding!.trace.slice(-r.finding!.cycle!).map((e) => e.ev);
    expect(events).toContain('preempt');
    expect(events).not.toContain('token');
    expect(explore(config({ ...bound, preemptions: 3 })).verdict).toBe('verified');
  });
});
