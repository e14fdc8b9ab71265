// Stepping, observing and determinism: stepOnce returns exactly the events the run emits; observe() reports
// the state the spec computes from those events (request states, servers, counts, block owners, worker
// states, FIFOs, loads); the same seed gives the same trace bit for bit; an asynchronous executor gives
// the same run as a synchronous one.
import { describe, expect, it } from 'vitest';
import { Engine, type Mode } from '../engine/engine.ts';
import { CostModelExecutor } from '../engine/executors/cost-model.ts';
import { ExecutorError, type ResizeMechanism, type StepExecutor, type StepSpec } from '../engine/executors/step-executor.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import { TraceChecker } from '../spec/checker.ts';
import { cyclingPolicy, MODES, PROFILE, smallWorkload } from './engine-fixtures.ts';

function engineFor(mode: Mode, seed: number, sink: MemorySink | null = null, executor?: StepExecutor) {
  return new Engine({
    mode,
    profile: PROFILE,
    workload: smallWorkload(seed, 30, { rate: 40, abortFraction: 0.3, abortAfter: 0.2 }),
    blocks: 48,
    blockSize: 4,
    seed,
    policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.04) : null,
    prefillChunk: 64,
    unifiedChunk: 32,
    trace: sink,
    executor,
  });
}

describe('stepOnce and observe', () => {
  it.each(MODES)('%s: after every step, observe() agrees with the spec replaying the emitted events', (mode) => {
    const engine = engineFor(mode, 11);
    const checker = new TraceChecker({ quiescent: true, system: { retireEnded: false } });
    checker.feed(JSON.stringify(engine.header));
    let steps = 0;
    let events = 0;
    while (!engine.done) {
      const emitted = engine.stepOnce();
      steps++;
      for (const ev of emitted) checker.feed(JSON.stringify(ev));
      events += emitted.length;
      expect(checker.done, `the spec refused an event of step ${steps}`).toBe(false);
      expect(engine.checkBookkeeping(), `step ${steps}`).toEqual([]);
      const sys = checker.sys!;
      const view = engine.observe();
      // Requests: lifecycle state, server, generated and computed counts.
      expect(Object.keys(view.requests)).toEqual(sys.requestIds);
      sys.requestIds.forEach((id, i) => {
        const spec = sys.requests[i];
        const mine = view.requests[id];
        expect({ id, state: mine.state, server: mine.server, generated: mine.generated, computed: mine.computed }).toEqual({
          id,
          state: spec.value,
          server: spec.context.server,
          generated: spec.context.generated,
          computed: spec.context.computed,
        });
        expect([...sys.tables[i]].sort((a, b) => a - b)).toEqual([...mine.blocks].sort((a, b) => a - b));
      });
      // Blocks: owner or free.
      expect(view.blocks).toEqual(sys.blocks.map((b) => b.context.owners[0] ?? null));
      // Workers: state, FIFO in order, load.
      expect(Object.keys(view.workers)).toEqual(sys.workerIds);
      sys.workerIds.forEach((id, w) => {
        const spec = sys.workers[w];
        expect({ id, state: view.workers[id].state, fifo: view.workers[id].fifo, load: view.workers[id].load }).toEqual({
          id,
          state: spec.value,
          fifo: [...spec.context.fifo],
          load: spec.context.load,
        });
      });
    }
    expect(engine.stepOnce()).toEqual([]);
    expect(checker.end().verdict).toBe('conforms');
    expect(steps).toBeGreaterThan(50);
    expect(events).toBeGreaterThan(steps);
  });

  it('the events stepOnce returns are the trace a sink receives, in the same order', () => {
    const sink = new MemorySink();
    const stepped = engineFor('semi-pd', 4, sink);
    const collected = [];
    while (!stepped.done) collected.push(...stepped.stepOnce());
    expect(collected).toEqual(sink.events);
    expect(collected.length).toBeGreaterThan(100);
  });
});

describe('determinism', () => {
  it.each(MODES)('%s: the same seed gives the same trace, bit for bit', (mode) => {
    const a = new MemorySink();
    const b = new MemorySink();
    engineFor(mode, 21, a).runToCompletion();
    engineFor(mode, 21, b).runToCompletion();
    expect(b.text()).toBe(a.text());
    const c = new MemorySink();
    engineFor(mode, 22, c).runToCompletion();
    expect(c.text()).not.toBe(a.text());
  });

  it('tracing does not change the run: metrics with and without a sink are identical', () => {
    const traced = engineFor('semi-pd', 5, new MemorySink()).runToCompletion();
    const untraced = engineFor('semi-pd', 5).runToCompletion();
    expect(untraced.metrics).toEqual(traced.metrics);
    expect(untraced.events).toBe(traced.events);
  });
});

describe('asynchronous executors', () => {
  class AsyncCostModel implements StepExecutor {
    readonly name = 'async-cost-model';
    private readonly inner = new CostModelExecutor(PROFILE);
    async execute(step: StepSpec) {
      await new Promise((resolve) => setImmediate(resolve));
      return this.inner.execute(step);
    }
    transferTime(tokens: number) {
      return this.inner.transferTime(tokens);
    }
    workerInitTime(mechanism: ResizeMechanism) {
      return this.inner.workerInitTime(mechanism);
    }
  }

  it('runToCompletionAsync with an async executor gives the events of the synchronous run', async () => {
    for (const mode of ['semi-pd', 'disaggregated'] as const) {
      const sync = new MemorySink();
      engineFor(mode, 9, sync).runToCompletion();
      const async = new MemorySink();
      await engineFor(mode, 9, async, new AsyncCostModel()).runToCompletionAsync();
      expect(async.events).toEqual(sync.events);
      expect(async.events.length).toBeGreaterThan(100);
    }
  });

  it('the synchronous driver refuses an asynchronous executor with a clear error', () => {
    const engine = engineFor('semi-pd', 9, null, new AsyncCostModel());
    expect(() => engine.runToCompletion()).toThrow(ExecutorError);
    expect(() => engineFor('semi-pd', 9, null, new AsyncCostModel()).runToCompletion()).toThrow(/runToCompletionAsync/);
  });
});

describe('the policy observation', () => {
  it('agrees with the observable state at every tick', () => {
    let engine!: Engine;
    let ticks = 0;
    let sawQueue = false;
    let sawLatency = false;
    const policy = {
      name: 'probe',
      interval: 0.05,
      decide(obs: import('../engine/policy-api.ts').Observation) {
        ticks++;
        const view = engine.observe();
        const states = Object.values(view.requests).map((r) => r.state);
        expect(obs.time).toBe(view.time);
        expect(obs.split).toEqual(view.split);
        expect(obs.shareRule).toBe('oversubscribe');
        expect(obs.prefillQueue.requests).toBe(states.filter((s) => s === 'waiting' || s === 'prefilling').length);
        expect(obs.prefillQueue.promptLengths).toHaveLength(obs.prefillQueue.requests);
        expect(obs.decodeBatch.requests).toBe(states.filter((s) => s === 'decoding' || s === 'handedOff').length);
        expect(obs.kvUsage).toBeCloseTo(view.blocks.filter((b) => b !== null).length / view.blocks.length, 12);
        const arrived = Object.keys(view.requests).length;
        expect(obs.arrivalRate * Math.min(0.05, obs.time)).toBeLessThanOrEqual(arrived + 1e-9);
        expect(obs.slo).toEqual({ ttft: 2, tpot: 0.1 });
        expect(obs.model.prefillTime(50, 100)).toBeGreaterThan(obs.model.prefillTime(100, 100));
        if (obs.prefillQueue.requests > 0) sawQueue = true;
        if (obs.ttft.count > 0) {
          sawLatency = true;
          expect(obs.ttft.p50).toBeLessThanOrEqual(obs.ttft.p90);
          expect(obs.ttft.p90).toBeLessThanOrEqual(obs.ttft.p99);
        }
        return {};
      },
    };
    engine = new Engine({ mode: 'semi-pd', profile: PROFILE, workload: smallWorkload(3, 60, { rate: 80 }), blocks: 80, blockSize: 4, policy });
    engine.runToCompletion();
    expect(ticks).toBeGreaterThan(10);
    expect(sawQueue).toBe(true);
    expect(sawLatency).toBe(true);
  });
});
