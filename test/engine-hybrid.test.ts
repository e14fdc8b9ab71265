// Hybrid models and preemption in any phase, in the engine (trace v3): a sliding window's second layer
// group, freed while its request lives once out of the window; state slots, one per admitted request; a
// unified worker that retracts a request still prefilling. Each in every mode it runs in, judged by the spec
// (the traces conform, quiescent) and held against it after every step in lockstep; what the engine refuses;
// and the fault switch Z20 (the window applied to the global layers) caught by the rule it breaks.
import { describe, expect, it } from 'vitest';
import { Engine, EngineConfigError, type EngineOptions, type Mode } from '../engine/engine.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import { disagreement } from '../properties/lockstep.ts';
import { TraceChecker } from '../spec/checker.ts';
import type { TraceEvent } from '../spec/trace-format.ts';
import { explain, PROFILE, smallWorkload, tracedRun } from './engine-fixtures.ts';

const base = (workload: WorkloadRequest[], extra: Partial<EngineOptions> = {}): EngineOptions => ({ mode: 'unified', workload, profile: PROFILE, blocks: 400, blockSize: 4, ...extra });

/** Per event index, the requests holding a state slot after it. */
function slotHolders(events: readonly TraceEvent[]): number[] {
  const held = new Set<number>();
  return events.map((e) => {
    if (e.ev === 'slot_alloc') held.add(e.slot);
    else if (e.ev === 'slot_free') held.delete(e.slot);
    return held.size;
  });
}

describe('a sliding window: two layer groups, the windowed one freed while its request lives', () => {
  it.each(['unified', 'semi-pd', 'nexus', 'disaggregated'] as Mode[])('%s: the trace declares the groups, frees windowed blocks of live requests, and conforms', (mode) => {
    const run = tracedRun(base(smallWorkload(3, 12, { prompt: 'uniform:8:80', output: 'uniform:4:30' }), { mode, slidingWindow: 16, prefillChunk: 32, unifiedChunk: 32 }));
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    const header = run.sink.headerLine!;
    expect(header.version).toBe(3);
    expect(header.groups).toEqual([{ id: 'full' }, { id: 'swa', window: 16 }]);
    const ended = new Set<string>();
    const transfers = new Map<string, string>();
    let early = 0;
    for (const e of run.sink.events) {
      if (e.ev === 'finish' || e.ev === 'abort' || e.ev === 'preempt') ended.add(e.req); // whole frees follow
      if (e.ev === 'alloc') expect(e.group === 'full' || e.group === 'swa').toBe(true);
      if (e.ev === 'transfer_begin') transfers.set(e.xfer, e.req);
      if (e.ev === 'transfer_end') ended.add(transfers.get(e.xfer)!); // the prefill side's copy goes whole
      if (e.ev === 'free' && e.group === 'full') expect(ended.has(e.req), `${e.req}'s full group freed while it lives`).toBe(true);
      if (e.ev === 'free' && e.group === 'swa' && !ended.has(e.req)) early += e.blocks.length;
      if (e.ev === 'schedule') ended.delete(e.req);
    }
    expect(early).toBeGreaterThan(10);
  });

  it('a window keeps fewer blocks: the peak held is below the same run without one, doubled', () => {
    const workload = smallWorkload(4, 6, { prompt: 'uniform:200:300', output: 'uniform:40:60', rate: 1000 });
    const held = (extra: Partial<EngineOptions>) => {
      const run = tracedRun(base(workload, { blocks: 2000, ...extra }));
      expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
      let now = 0;
      let peak = 0;
      for (const e of run.sink.events) {
        if (e.ev === 'alloc') now += e.blocks.length;
        if (e.ev === 'free') now -= e.blocks.length;
        peak = Math.max(peak, now);
      }
      return peak;
    };
    const plain = held({});
    const windowed = held({ slidingWindow: 8 });
    // The windowed group holds at most a few blocks per request where the full group holds ~70.
    expect(windowed).toBeGreaterThan(plain);
    expect(windowed).toBeLessThan(plain * 1.5);
  });

  it('in lockstep, the engine’s blocks are the spec’s after every step (both groups)', () => {
    const engine = new Engine(base(smallWorkload(6, 10, { prompt: 'uniform:4:40', output: 'uniform:2:20' }), { slidingWindow: 5, blockSize: 2, blocks: 120, unifiedChunk: 8, trace: new MemorySink() }));
    const checker = new TraceChecker({ quiescent: true, system: { retireEnded: false } });
    checker.feed(JSON.stringify(engine.header));
    while (!engine.done) {
      for (const ev of engine.stepOnce()) checker.feed(JSON.stringify(ev));
      expect(checker.done, 'the spec refused an event').toBe(false);
      expect(engine.checkBookkeeping()).toEqual([]);
      expect(disagreement(engine, checker)).toBeNull();
    }
    expect(checker.end().verdict).toBe('conforms');
  });
});

describe('state slots: one recurrent state per admitted request', () => {
  it.each(['unified', 'semi-pd', 'nexus'] as Mode[])('%s: every schedule takes a slot, no more than the pool holds at once, all given back', (mode) => {
    const run = tracedRun(base(smallWorkload(8, 14, { rate: 200 }), { mode, stateSlots: 3 }));
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    expect(run.sink.headerLine!.stateSlots).toBe(3);
    const events = run.sink.events;
    const counts = (k: string) => events.filter((e) => e.ev === k).length;
    expect(counts('slot_alloc')).toBe(counts('schedule'));
    expect(counts('slot_free')).toBe(counts('slot_alloc'));
    const holders = slotHolders(events);
    expect(Math.max(...holders)).toBe(3); // the slots, not the blocks, limit admission here
    expect(holders[holders.length - 1]).toBe(0);
  });

  it('in lockstep the engine’s slot holders are the spec’s, and a slot the engine books to someone else is a disagreement', () => {
    const engine = new Engine(base(smallWorkload(9, 8, { rate: 200 }), { stateSlots: 2, trace: new MemorySink() }));
    const checker = new TraceChecker({ system: { retireEnded: false } });
    checker.feed(JSON.stringify(engine.header));
    let tampered: string | null = null;
    while (!engine.done) {
      for (const ev of engine.stepOnce()) checker.feed(JSON.stringify(ev));
      expect(disagreement(engine, checker)).toBeNull();
      const view = engine.observe();
      const held = view.slots!.findIndex((s) => s !== null);
      if (held >= 0 && tampered === null) {
        // The same state with slot `held` booked to nobody: the comparison must see it.
        const observe = engine.observe.bind(engine);
        engine.observe = () => {
          const v = observe();
          v.slots![held] = null;
          return v;
        };
        tampered = disagreement(engine, checker);
        engine.observe = observe;
      }
    }
    expect(tampered).toMatch(/^state slot \d holds no request's state in the engine, r\d+ request's in the spec$/);
  });
});

describe('preemption while prefilling (unified, as vLLM v1)', () => {
  /** Long prompts in small chunks on a small pool: decode items run short while others are mid-prefill. */
  const pressed = (seed: number, extra: Partial<EngineOptions>) =>
    tracedRun(base(smallWorkload(seed, 8, { prompt: 'uniform:10:30', output: 'uniform:20:40', rate: 500 }), { blocks: 24, unifiedChunk: 4, ...extra }));

  it('retracts requests mid-prefill; they are recomputed from position 0 and finish; the traces conform', () => {
    let midPrefill = 0;
    for (let seed = 0; seed < 12; seed++) {
      const run = pressed(seed, { preemptPrefilling: true });
      expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
      expect(run.sink.headerLine!.version).toBe(3);
      const events = run.sink.events;
      events.forEach((e, i) => {
        if (e.ev !== 'preempt') return;
        const since = events.slice(0, i).filter((p) => 'req' in p && p.req === e.req);
        const lastSchedule = since.map((p) => p.ev).lastIndexOf('schedule');
        if (!since.slice(lastSchedule).some((p) => p.ev === 'join')) midPrefill++;
      });
      expect(run.result.records.every((r) => r.outcome === 'finished')).toBe(true);
    }
    expect(midPrefill).toBeGreaterThan(10);
  });

  it('off (the default), only decoding requests are preempted and the trace stays version 1', () => {
    for (let seed = 0; seed < 6; seed++) {
      const run = pressed(seed, {});
      expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
      expect(run.sink.headerLine!.version).toBe(1);
    }
  });
});

describe('speculative decoding that gives rejected slots back (SGLang)', () => {
  it.each([1, 4])('block size %i: after verifies with rejections, live requests free their last blocks past the accepted positions; the traces conform', (blockSize) => {
    const options = (freeRejected: boolean) => base(smallWorkload(12, 12, { output: 'uniform:8:40' }), { blockSize, blocks: 3000, speculative: { drafter: 'oracle', k: 4, acceptance: 0.4, freeRejected } });
    const on = tracedRun(options(true));
    expect(on.verdict.verdict, explain(on.verdict)).toBe('conforms');
    const live = new Set<string>();
    let tail = 0;
    for (const e of on.sink.events) {
      if (e.ev === 'join') live.add(e.req);
      if (e.ev === 'finish' || e.ev === 'abort' || e.ev === 'preempt') live.delete(e.req);
      if (e.ev === 'free' && live.has(e.req)) tail += e.blocks.length;
    }
    expect(tail).toBeGreaterThan(blockSize === 1 ? 50 : 5);
    // The same tokens as when the rejected slots stay (the accepted positions never move).
    const off = tracedRun(options(false));
    expect(on.result.records.map((r) => r.generated)).toEqual(off.result.records.map((r) => r.generated));
    expect(off.sink.events.filter((e) => e.ev === 'free').length).toBeLessThan(on.sink.events.filter((e) => e.ev === 'free').length);
  });
});

describe('what the engine refuses, in one line', () => {
  const one: WorkloadRequest[] = [{ id: 'a', arrival: 0, prompt: 4, output: 4 }];
  it.each([
    [{ slidingWindow: 0 }, /sliding window \(positions\) must be an integer in 1\.\./],
    [{ stateSlots: 1.5 }, /state slots \(per GPU\) must be an integer in 1\.\./],
    [{ slidingWindow: 4, prefixCaching: true }, /prefix caching with a sliding window is not modelled/],
    [{ stateSlots: 2, prefixCaching: true }, /prefix caching with state slots is not modelled/],
    [{ slidingWindow: 4, allocEvents: 'steps' }, /not with allocation steps/],
    [{ stateSlots: 2, mode: 'disaggregated' }, /state slots in the disaggregated mode are not modelled/],
    [{ preemptPrefilling: true, mode: 'semi-pd' }, /preemption while prefilling applies to the unified mode only/],
    [{ stateSlots: 2, workload: [{ id: 'a', arrival: 0, prompt: 4, output: 4, n: 2 }] }, /parallel samples \(n > 1\) with state slots are not modelled/],
  ] as [Partial<EngineOptions>, RegExp][])('%j', (extra, message) => {
    expect(() => new Engine(base(one, extra))).toThrow(EngineConfigError);
    expect(() => new Engine(base(one, extra))).toThrow(message);
  });
});

describe('bug zoo Z20 (vLLM PR #51756): the window applied to the global layers', () => {
  it('the switch frees full-attention blocks of a live request: PartialFreeOnlyUnneeded, at that free', () => {
    const workload: WorkloadRequest[] = [{ id: 'r0', arrival: 0, prompt: 6, output: 3 }];
    const fixed = tracedRun(base(workload, { blockSize: 2, slidingWindow: 2 }));
    expect(fixed.verdict.verdict, explain(fixed.verdict)).toBe('conforms');
    const broken = tracedRun(base(workload, { blockSize: 2, slidingWindow: 2, faults: { windowAppliedToGlobalLayers: true } }));
    expect(broken.verdict.verdict).toBe('violation');
    if (broken.verdict.verdict !== 'violation') return;
    expect(broken.verdict.finding.rule).toBe('PartialFreeOnlyUnneeded');
    expect(broken.verdict.finding.event).toContain('"group":"full"');
    expect(broken.verdict.finding.line).toBeLessThanOrEqual(13);
  });
});
