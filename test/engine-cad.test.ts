// Core-attention disaggregation in the engine (docs/cad.md): the unified engine with attention servers writes
// trace version 4 that the spec accepts (task events, ping-pong buffers, a server loss), its balancing
// scheduler meets the target ε wherever the shards allow it, the cost model prices the worker's dense part
// plus the slowest server (compute and Q/K/V/O transfer), and the options are checked.
import { describe, expect, it } from 'vitest';
import { Engine, EngineConfigError, type EngineOptions } from '../engine/engine.ts';
import { CostModelExecutor } from '../engine/executors/cost-model.ts';
import type { StepSpec } from '../engine/executors/step-executor.ts';
import { loadProfile, type Profile } from '../engine/profile.ts';
import { balance, causalPairs } from '../engine/sched/attention.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import type { TraceEvent } from '../spec/trace-format.ts';
import { explain, PROFILE, smallWorkload, tracedRun } from './engine-fixtures.ts';

type Ev<K extends TraceEvent['ev']> = Extract<TraceEvent, { ev: K }>;
const of = <K extends TraceEvent['ev']>(events: readonly TraceEvent[], ev: K): Ev<K>[] => events.filter((e): e is Ev<K> => e.ev === ev);

/** Per task id, how many times each task event names it. */
function taskCounts(events: readonly TraceEvent[]): Map<string, Record<string, number>> {
  const counts = new Map<string, Record<string, number>>();
  for (const e of events) {
    if (!e.ev.startsWith('task_')) continue;
    const id = (e as { task: string }).task;
    const c = counts.get(id) ?? {};
    c[e.ev] = (c[e.ev] ?? 0) + 1;
    counts.set(id, c);
  }
  return counts;
}

/** Per step (worker/step), each server's load (causal pairs of the tasks first dispatched to it) and the step's heaviest query position. */
function stepLoads(events: readonly TraceEvent[]): { loads: Map<string, number>; heaviest: number }[] {
  const created = new Map<string, { step: string; pairs: number; to: number }>();
  const steps = new Map<string, { loads: Map<string, number>; heaviest: number }>();
  for (const e of events) {
    if (e.ev === 'task_create') {
      const key = `${e.worker}/${e.step}`;
      created.set(e.task, { step: key, pairs: causalPairs(e.from, e.to), to: e.to });
      const s = steps.get(key) ?? { loads: new Map(), heaviest: 0 };
      s.heaviest = Math.max(s.heaviest, e.to);
      steps.set(key, s);
    } else if (e.ev === 'task_dispatch') {
      const t = created.get(e.task)!;
      const s = steps.get(t.step)!;
      s.loads.set(e.server, (s.loads.get(e.server) ?? 0) + t.pairs);
    }
  }
  return [...steps.values()];
}

const cad = (seed: number, servers: number, extra: Partial<EngineOptions> = {}) =>
  tracedRun({ mode: 'unified', workload: smallWorkload(seed, 24, { rate: 50, abortFraction: 0.15 }), blocks: 80 + 20 * seed, blockSize: 4, attentionServers: { servers, offload: 'all' }, ...extra });

describe('the unified engine with attention servers writes v4 traces the spec accepts', () => {
  it.each([1, 2, 3, 4, 5])('seed %i: conforms with --quiescent; every task created, dispatched, computed and read back once', (seed) => {
    const servers = 1 + (seed % 4);
    const run = cad(seed, servers, { attentionServers: { servers, buffers: 1 + (seed % 2), shards: 1 + (seed % 3), offload: 'all' } });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    expect(run.result.header.version).toBe(4);
    expect(run.result.header.attentionServers).toEqual(Array.from({ length: servers }, (_, i) => ({ id: `A${i}`, buffers: 1 + (seed % 2) })));
    const ev = run.sink.events;
    const created = of(ev, 'task_create');
    expect(created.length).toBeGreaterThan(50);
    expect(created.length).toBe(run.result.attention!.tasks);
    expect(new Set(created.map((e) => e.task)).size).toBe(created.length);
    for (const [id, c] of taskCounts(ev)) expect(c, id).toEqual({ task_create: 1, task_dispatch: 1, task_start: 1, task_end: 1, task_consume: 1 });
    expect(of(ev, 'server_lost')).toHaveLength(0);
    // Each step's tasks cover exactly the positions of its batch items, and come before its end.
    const batches = new Map(of(ev, 'step_begin').map((b) => [`${b.worker}/${b.step}`, b.batch]));
    const covered = new Map<string, number>();
    for (const t of created) covered.set(`${t.worker}/${t.step}/${t.req}`, (covered.get(`${t.worker}/${t.step}/${t.req}`) ?? 0) + t.to - t.from);
    for (const [key, batch] of batches) for (const item of batch) expect(covered.get(`${key}/${item.req}`), `${key} ${item.req}`).toBe(item.tokens);
  });

  it('offload prefill: only prompt chunks become tasks; decode attention stays on the worker, and decode steps are cheaper', () => {
    const workload = smallWorkload(6, 24, { rate: 50, output: 'uniform:10:60' });
    const opts = { mode: 'unified' as const, workload, blocks: 400, blockSize: 4 };
    const all = tracedRun({ ...opts, attentionServers: { servers: 2, offload: 'all' } });
    const prefill = tracedRun({ ...opts, attentionServers: { servers: 2, offload: 'prefill', lossAtStep: 3 } });
    for (const run of [all, prefill]) expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    // Every task is a prompt chunk's, or a recompute's (a preempted request's prefill covers its generated tokens too).
    const prompts = new Map(workload.map((r) => [r.id, r.prompt]));
    const preempted = new Set(of(prefill.sink.events, 'preempt').map((e) => e.req));
    for (const t of of(prefill.sink.events, 'task_create')) expect(t.from < prompts.get(t.req)! || preempted.has(t.req), t.task).toBe(true);
    expect(of(prefill.sink.events, 'task_create').length).toBeLessThan(of(all.sink.events, 'task_create').length / 3);
    expect(prefill.result.endTime).toBeLessThan(all.result.endTime);
  });

  it('the same options and seed give the same trace', () => {
    expect(cad(7, 3).text).toBe(cad(7, 3).text);
  });

  it('ping-pong: a server never holds more tasks than its buffers, and a buffer takes a task only once its result is read', () => {
    const run = tracedRun({ mode: 'unified', workload: smallWorkload(3, 16, { prompt: 'uniform:20:200' }), blocks: 200, blockSize: 4, attentionServers: { servers: 2, buffers: 2, shards: 4 } });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    const holding = new Map<string, string>();
    let waited = 0;
    const where = new Map<string, string>();
    for (const e of run.sink.events) {
      if (e.ev === 'task_dispatch') {
        const key = `${e.server}/${e.buffer}`;
        expect(holding.has(key), key).toBe(false);
        expect(e.buffer).toBeLessThan(2);
        holding.set(key, e.task);
        where.set(e.task, key);
        if (e.t > of(run.sink.events, 'task_create').find((c) => c.task === e.task)!.t) waited++;
      } else if (e.ev === 'task_consume') holding.delete(where.get(e.task)!);
    }
    // Some tasks waited for a buffer (more tasks than buffers on a server in a step).
    expect(waited).toBeGreaterThan(0);
  });

  it('works with the other options: asynchronous scheduling, prefix caching, speculative decoding, preemption while prefilling', () => {
    const workload = smallWorkload(2, 24, { rate: 50, abortFraction: 0.2 }).map((r, i) => ({ ...r, ...(i % 3 === 0 ? { prefix: { id: `p${i % 2}`, length: Math.min(r.prompt, 12) } } : {}) }));
    for (const extra of [{ asyncScheduling: true }, { prefixCaching: true }, { speculative: { drafter: 'oracle', k: 3, acceptance: 0.6 } as const }, { preemptPrefilling: true }, { unifiedChunk: 0 }]) {
      const run = tracedRun({ mode: 'unified', workload, blocks: 70, blockSize: 4, attentionServers: { servers: 3, lossAtStep: 4 }, ...extra });
      expect(run.verdict.verdict, `${JSON.stringify(extra)}\n${explain(run.verdict)}`).toBe('conforms');
      expect(run.result.metrics.preemptions, JSON.stringify(extra)).toBeGreaterThan(0);
    }
  });
});

describe('the balancing scheduler', () => {
  it('greedy, then moves and splits: the busiest server within (1 + ε) · mean wherever no single position is heavier than ε · mean', () => {
    for (const epsilon of [0.05, 0.1, 0.3]) {
      for (const servers of [2, 3, 4]) {
        const run = tracedRun({ mode: 'unified', workload: smallWorkload(servers, 20, { prompt: 'uniform:64:600', output: 'uniform:1:3' }), blocks: 800, blockSize: 4, attentionServers: { servers, epsilon } });
        expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
        let feasible = 0;
        for (const s of stepLoads(run.sink.events)) {
          const loads = [...Array(servers).keys()].map((i) => s.loads.get(`A${i}`) ?? 0);
          const mean = loads.reduce((a, b) => a + b, 0) / servers;
          if (s.heaviest > epsilon * mean) continue;
          feasible++;
          expect(Math.max(...loads), `ε ${epsilon}, ${servers} servers: ${loads.join(', ')}`).toBeLessThanOrEqual((1 + epsilon) * mean + 1e-6);
        }
        expect(feasible, `ε ${epsilon}, ${servers} servers`).toBeGreaterThan(5);
        expect(run.result.attention!.worstRatio).toBe(0);
      }
    }
  });

  it('one long prompt on 4 servers: max/min load within the target, from 2 shards split on the query axis', () => {
    const { shards, loads } = balance([{ item: 0, from: 0, to: 4096 }, { item: 0, from: 4096, to: 8192 }].slice(), [0, 1, 2, 3], 4, 0.05);
    const mean = causalPairs(0, 8192) / 4;
    expect(Math.max(...loads)).toBeLessThanOrEqual(1.05 * mean);
    expect(Math.max(...loads) / Math.min(...loads)).toBeLessThan(1.1);
    // The shards still cover 0 .. 8191 once each.
    const sorted = shards.slice().sort((a, b) => a.from - b.from);
    expect(sorted[0].from).toBe(0);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i].from).toBe(sorted[i - 1].to);
    expect(sorted[sorted.length - 1].to).toBe(8192);
    // ε = ∞ in effect: greedy alone, no split.
    expect(balance([{ item: 0, from: 0, to: 4096 }, { item: 0, from: 4096, to: 8192 }], [0, 1, 2, 3], 4, 1e9).shards).toHaveLength(2);
  });
});

describe('server loss', () => {
  let redispatched = 0;
  it.each([
    [1, 2, 3, 1],
    [2, 3, 5, 1],
    [3, 4, 2, 3],
    [4, 3, 1, 0],
  ])('seed %i, %i servers, lost at step %i (server %i): conforms; every task read back exactly once, none lost or duplicated', (seed, servers, lossAtStep, lossServer) => {
    const run = cad(seed, servers, { attentionServers: { servers, lossAtStep, lossServer } });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    const ev = run.sink.events;
    const lost = of(ev, 'server_lost');
    expect(lost.map((e) => e.server)).toEqual([`A${lossServer}`]);
    const at = ev.indexOf(lost[0]);
    // Nothing goes to the lost server after its loss.
    expect(ev.slice(at).some((e) => e.ev === 'task_dispatch' && e.server === `A${lossServer}`)).toBe(false);
    const counts = taskCounts(ev);
    for (const [id, c] of counts) {
      expect(c.task_create, id).toBe(1);
      expect(c.task_consume, id).toBe(1);
      expect(c.task_dispatch, id).toBeGreaterThanOrEqual(1);
    }
    const again = [...counts.values()].filter((c) => c.task_dispatch > 1).length;
    redispatched += again;
    expect(run.result.attention!.losses).toBe(1);
    expect(run.result.attention!.dispatches).toBe(counts.size + again);
    expect(run.result.attention!.consumes).toBe(counts.size);
  });

  it('some of the losses above re-dispatched tasks', () => {
    expect(redispatched).toBeGreaterThan(0);
  });

  it('a loss mid-task: the lost server’s computing task is dispatched again to a live server', () => {
    const workload: WorkloadRequest[] = [{ id: 'a', arrival: 0, prompt: 8, output: 2 }];
    const run = tracedRun({ mode: 'unified', workload, blocks: 16, blockSize: 4, attentionServers: { servers: 2, lossAtStep: 1 } });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    const ev = run.sink.events;
    const at = ev.findIndex((e) => e.ev === 'server_lost');
    const before = ev[at - 1] as Ev<'task_start'>;
    expect(before.ev).toBe('task_start');
    const redispatch = ev.slice(at).find((e): e is Ev<'task_dispatch'> => e.ev === 'task_dispatch')!;
    expect(redispatch.task).toBe(before.task);
    expect(redispatch.server).toBe('A0');
  });
});

describe('the cost model with attention servers', () => {
  const profiles: Profile[] = [PROFILE, loadProfile('llama3-8b-a100-vidur')];
  const prefillStep = (profile: Profile, prompt: number, servers: number | null): number => {
    const run = tracedRun({ profile, mode: 'unified', workload: [{ id: 'a', arrival: 0, prompt, output: 1 }], blocks: 4096, blockSize: 16, unifiedChunk: 0, attentionServers: servers === null ? null : { servers } });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    const begin = of(run.sink.events, 'step_begin')[0];
    const end = of(run.sink.events, 'step_end')[0];
    return end.t - begin.t;
  };

  it.each(profiles.map((p) => [p.name, p] as const))('%s: a long prompt’s step gets shorter with more servers', (_, profile) => {
    const times = [1, 2, 4, 8].map((n) => prefillStep(profile, 32768, n));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeLessThan(times[i - 1]);
  });

  it.each(profiles.map((p) => [p.name, p] as const))('%s: with a fast link (450 GB/s) 8 servers beat co-located attention on a 32k prompt, and 1 server does not', (_, p) => {
    const profile = { ...p, transfer: { bytesPerSecond: 450e9, latency: 1e-5 } };
    const colocated = prefillStep(profile, 32768, null);
    expect(prefillStep(profile, 32768, 8)).toBeLessThan(colocated * 0.85);
    expect(prefillStep(profile, 32768, 1)).toBeGreaterThan(colocated * 0.95);
  });

  it('a step is its dense part plus the slowest server; the transfer term grows with the bytes', () => {
    for (const profile of profiles) {
      const ex = new CostModelExecutor(profile);
      const N = 8192;
      const spec: StepSpec = { worker: 'U0', role: 'unified', gpu: 0, share: 100, effectiveShare: 100, coRunning: false, items: [], prefillTokens: N, attentionPairs: causalPairs(0, N), decodeItems: 0, contextTokens: 0 };
      const dense = ex.denseTime(spec);
      expect(dense).toBeLessThan(ex.stepTime(spec));
      const half = { tasks: 1, pairs: causalPairs(0, N) / 2, queries: N / 2, keys: N };
      const withServers = { ...spec, attention: { servers: [half, { ...half, pairs: half.pairs / 2 }], wastedPairs: 0, buffers: 2, decodeLocal: false } };
      expect(ex.stepTime(withServers)).toBeCloseTo(dense + ex.serverTime(half, 2), 12);
      // Bytes: Q in and O out per query, K and V per key; more of either, a longer transfer.
      expect(ex.attentionBytes({ ...half, queries: N })).toBeGreaterThan(ex.attentionBytes(half));
      expect(ex.attentionBytes({ ...half, keys: 2 * N })).toBeGreaterThan(ex.attentionBytes(half));
      const slow = { ...profile, transfer: { ...profile.transfer, bytesPerSecond: profile.transfer.bytesPerSecond / 10 } };
      expect(new CostModelExecutor(slow).serverTime(half, 1) - ex.serverTime(half, 1)).toBeCloseTo((9 * ex.attentionBytes(half)) / profile.transfer.bytesPerSecond, 9);
      // Ping-pong hides transfer under compute: never slower than one buffer.
      const many = { ...half, tasks: 4 };
      expect(ex.serverTime(many, 2)).toBeLessThan(ex.serverTime(many, 1));
      // A loss's wasted pairs are paid on top.
      expect(ex.stepTime({ ...withServers, attention: { ...withServers.attention, wastedPairs: 1e6 } })).toBeGreaterThan(ex.stepTime(withServers));
    }
  });
});

describe('attention servers: options refused', () => {
  const base: EngineOptions = { mode: 'unified', profile: PROFILE, workload: smallWorkload(1, 3), blocks: 100, blockSize: 4 };
  const refused = (extra: Partial<EngineOptions>, message: RegExp) => {
    expect(() => new Engine({ ...base, ...extra })).toThrow(EngineConfigError);
    expect(() => new Engine({ ...base, ...extra })).toThrow(message);
  };

  it('each with one line', () => {
    refused({ mode: 'semi-pd', attentionServers: { servers: 2 } }, /unified mode only for now, got semi-pd/);
    refused({ mode: 'disaggregated', attentionServers: { servers: 2 } }, /unified mode only/);
    refused({ attentionServers: { servers: 0 } }, /servers must be an integer in 1\.\.1024, got 0/);
    refused({ attentionServers: {} as never }, /servers must be an integer/);
    refused({ attentionServers: { servers: 2, buffers: 0 } }, /buffers \(per server\) must be an integer in 1\.\.1024/);
    refused({ attentionServers: { servers: 2, shards: 1.5 } }, /shards \(per batch item\)/);
    refused({ attentionServers: { servers: 2, epsilon: -0.1 } }, /epsilon \(balance target\) must be a finite number ≥ 0/);
    refused({ attentionServers: { servers: 1, lossAtStep: 3 } }, /a server loss needs at least 2 servers/);
    refused({ attentionServers: { servers: 2, lossAtStep: 3, lossServer: 2 } }, /lossServer \(a server index below 2\)/);
    refused({ attentionServers: { servers: 2, ping: 1 } as never }, /unknown option 'ping'/);
    refused({ attentionServers: 3 as never }, /must be an object/);
    refused({ attentionServers: { servers: 2, offload: 'decode' as never } }, /offload must be all or prefill, got "decode"/);
    refused({ attentionServers: { servers: 2 }, slidingWindow: 8 }, /sliding window are not modelled/);
    const other = { name: 'other', execute: () => ({ duration: 1, tokens: [] }), transferTime: () => 0, workerInitTime: () => 0 };
    refused({ attentionServers: { servers: 2 }, executor: other }, /cost-model executor only, got executor 'other'/);
    refused({ faults: { pingPongFlipsEarly: true } }, /fault 'pingPongFlipsEarly' needs attention servers/);
    expect(() => new Engine({ ...base, attentionServers: null })).not.toThrow();
  });

  it('off: trace version as before, no attention servers in the header', () => {
    const engine = new Engine({ ...base });
    expect(engine.header.version).toBe(1);
    expect(engine.header.attentionServers).toBeUndefined();
  });
});
