// Each fault switch reintroduces a bug-zoo mechanism in the engine, and the spec rejects the run's trace
// (with the rule that names the broken property), while the same scenario without the fault conforms. Z4's
// preemption cascade breaks no rule of the spec: it is caught by a trace-level liveness rule (below), which
// the fault-off engine keeps on every run. The engine options the newer switches need (asynchronous
// scheduling, prefix caching, parallel samples, decode-side rejection) conform on their own.
import { describe, expect, it } from 'vitest';
import { Engine, MODES } from '../engine/engine.ts';
import { CAD_FAULT_NAMES, CAD_FAULTS, FAULT_NAMES, FAULTS, type CadFaultName, type EngineFaults, type FaultName } from '../engine/faults/index.ts';
import { loadAzure } from '../engine/workloads/azure.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import { TraceChecker } from '../spec/checker.ts';
import type { TraceEvent } from '../spec/trace-format.ts';
import { cyclingPolicy, explain, PROFILE, smallWorkload, tracedRun } from './engine-fixtures.ts';

type Scenario = Parameters<typeof tracedRun>[0];

const tested = new Set<FaultName>();

/** The fault's table entry allows the scenario (mode, options) and names the rule. */
function checkTable(name: FaultName, scenario: Scenario, rule: string) {
  const info = FAULTS.find((f) => f.name === name)!;
  expect(info.modes, `${name}: mode`).toContain(scenario.mode);
  for (const [key, value] of Object.entries(info.options)) {
    if (key === 'decodeAdmitTimeout') expect(scenario.decodeAdmitTimeout, `${name}: ${key}`).toBeDefined();
    else if (!(key === 'allocEvents' && name === 'locklessAllocator')) expect(scenario[key as keyof Scenario], `${name}: ${key}`).toEqual(value);
  }
  expect(info.check.rules as readonly string[], `${name}: rule`).toContain(rule);
  tested.add(name);
}

function expectCaught(scenario: Scenario, name: FaultName, rule: string) {
  checkTable(name, scenario, rule);
  const clean = tracedRun(scenario);
  expect(clean.verdict.verdict, `without the fault\n${explain(clean.verdict)}`).toBe('conforms');
  const faulty = tracedRun({ ...scenario, faults: { [name]: true } as EngineFaults });
  expect(faulty.verdict.verdict, 'with the fault').toBe('violation');
  if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.rule, explain(faulty.verdict)).toBe(rule);
  return { clean, faulty };
}

/**
 * NoPreemptionCascade, the trace-level liveness rule that catches Z4: after `preempt v` by worker W, W
 * preempts no other request before a `free` of v's blocks. Returns the first breach, or null.
 */
function preemptionRule(events: readonly TraceEvent[]): string | null {
  const pending = new Map<string, { req: string; at: number }>();
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (e.ev === 'free') {
      for (const [w, p] of pending) if (p.req === e.req) pending.delete(w);
    } else if (e.ev === 'preempt') {
      const p = pending.get(e.worker);
      if (p && p.req !== e.req) return `event ${i + 1}: ${e.worker} preempts ${e.req} before the blocks of its previous victim ${p.req} (event ${p.at}) were freed`;
      pending.set(e.worker, { req: e.req, at: i + 1 });
    }
  }
  return null;
}

/** Replays the trace's allocations and frees naively (no checker): the blocks handed out while already owned. */
function handedOutTwice(events: readonly TraceEvent[]): number[] {
  const owner = new Map<number, string>();
  const twice: number[] = [];
  for (const e of events) {
    if (e.ev === 'alloc' || e.ev === 'alloc_take') {
      for (const b of e.blocks) {
        if (owner.has(b)) twice.push(b);
        owner.set(b, e.req);
      }
    } else if (e.ev === 'free') {
      for (const b of e.blocks) if (owner.get(b) === e.req) owner.delete(b);
    }
  }
  return twice;
}

const req = (id: string, arrival: number, prompt: number, output: number, extra: Partial<WorkloadRequest> = {}): WorkloadRequest => ({ id, arrival, prompt, output, ...extra });

// A disaggregated run of the first Azure conversation requests, and the times of one request's transfer.
const azure = loadAzure('conv').slice(0, 40);
const disagg = (workload: WorkloadRequest[]): Scenario => ({ mode: 'disaggregated', workload, blocks: 4000, blockSize: 16 });
const base = tracedRun(disagg(azure));
const transfers = base.sink.events.filter((e) => e.ev === 'transfer_begin').map((b) => {
  const end = base.sink.events.find((e) => e.ev === 'transfer_end' && e.xfer === b.xfer)!;
  const join = base.sink.events.find((e) => e.ev === 'join' && e.req === b.req)!;
  return { req: b.req, begin: b.t, end: end.t, join: join.t };
});
const abortAt = (id: string, t: number) => azure.map((r) => (r.id === id ? { ...r, abortAt: t } : r));
const first = transfers[0];
const queuedAfterTransfer = transfers.find((x) => x.join > x.end)!;

// One request of one output token, unified and asynchronous: step 2 is launched before the stop condition
// of step 1's output is processed (vLLM async scheduling with max_tokens = 1), the shortest such trace.
const oneToken: Scenario = { mode: 'unified', workload: [req('r', 0, 5, 1)], blocks: 8, blockSize: 4, asyncScheduling: true };

// Three requests that outgrow a 10-block pool while decoding together under asynchronous scheduling: the
// decode worker, scheduling step N + 1 while step N runs, is short of a block and must preempt.
const squeeze: Scenario = { mode: 'semi-pd', workload: [req('a', 0, 7, 12), req('b', 0, 7, 12), req('c', 0, 7, 12)], blocks: 10, blockSize: 4, asyncScheduling: true };

describe('engine fault switches are caught by the spec', () => {
  it('the scenarios exist: a transfer to abort in flight, and one queued after its transfer', () => {
    expect(first.end).toBeGreaterThan(first.begin);
    expect(queuedAfterTransfer.join).toBeGreaterThan(queuedAfterTransfer.end);
  });

  it('Z1 forkSharesLastBlock: the fork of an n = 2 request takes the parent’s last block, which has an owner', () => {
    const { clean, faulty } = expectCaught({ mode: 'semi-pd', workload: [req('a', 0, 6, 3, { n: 2 })], blocks: 16, blockSize: 4 }, 'forkSharesLastBlock', 'SingleOwner');
    // Without the fault the fork copies: the child has blocks of its own and the same (greedy) output.
    const allocs = clean.sink.events.filter((e) => e.ev === 'alloc' && e.req === 'a#1');
    expect(allocs.length).toBeGreaterThan(0);
    expect(clean.result.records.map((r) => [r.id, r.outcome, r.generated])).toEqual([
      ['a', 'finished', 3],
      ['a#1', 'finished', 3],
    ]);
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.event).toMatch(/"req":"a#1"/);
  });

  it('Z2 prefixCacheKeepsEvicted: an evicted block stays in the map and is served as a hit after it was reissued', () => {
    const prefix = { id: 'sys', length: 8 };
    // a caches its two prefix blocks and finishes; b's prompt needs the whole pool, so they are evicted and
    // reissued to b; c has a's prefix and arrives while b holds them.
    const workload = [req('a', 0, 9, 1, { prefix }), req('b', 0.1, 15, 1), req('c', 0.105, 9, 1, { prefix })];
    const { clean, faulty } = expectCaught({ mode: 'unified', workload, blocks: 4, blockSize: 4, prefixCaching: true }, 'prefixCacheKeepsEvicted', 'CacheCoherent');
    expect(clean.result.sharing.evictions).toBe(2);
    expect(clean.result.sharing.hits).toBe(0); // evicted: no hit for c
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.event).toMatch(/"ev":"cache_hit","req":"c"/);
  });

  it('prefix caching: a later request takes the cached blocks by reference and skips computing them, and conforms', () => {
    const prefix = { id: 'sys', length: 9 };
    const run = tracedRun({ mode: 'unified', workload: [req('a', 0, 12, 2, { prefix }), req('c', 0.2, 10, 2, { prefix })], blocks: 16, blockSize: 4, prefixCaching: true });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    expect(run.result.header.version).toBe(2);
    expect(run.result.prefixHits).toBe(2); // the two full blocks of a 9-token prefix
    const aBlocks = run.sink.events.find((e) => e.ev === 'alloc' && e.req === 'a')!;
    const hit = run.sink.events.find((e) => e.ev === 'cache_hit' && e.req === 'c')!;
    if (aBlocks.ev === 'alloc' && hit.ev === 'cache_hit') expect(hit.blocks).toEqual(aBlocks.blocks.slice(0, 2));
    // c's first step computes only what the hit did not cover: 10 − 8 positions.
    const step = run.sink.events.find((e) => e.ev === 'step_begin' && e.batch.some((b) => b.req === 'c'));
    if (step?.ev === 'step_begin') expect(step.batch.find((b) => b.req === 'c')!.tokens).toBe(2);
  });

  it('Z16 lockStartsAtParent: the hit leaves its last block unlocked, and a radix eviction takes it while the request reads it', () => {
    const prefix = { id: 'sys', length: 8 };
    // a caches two prefix blocks and finishes; c hits them and decodes for a while; d needs room, so the
    // parked block is evicted: with the fault that is c's unlocked last block.
    const workload = [req('a', 0, 9, 1, { prefix }), req('c', 0.1, 9, 20, { prefix }), req('d', 0.105, 21, 1)];
    const scenario: Scenario = { mode: 'unified', workload, blocks: 8, blockSize: 4, prefixCaching: true, prefixCache: 'radix', cacheSizeEvents: false };
    const { clean, faulty } = expectCaught(scenario, 'lockStartsAtParent', 'NoEvictWhileLocked');
    expect(clean.result.header.prefixCache).toBe('radix');
    expect(clean.result.sharing.hits).toBe(2);
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.event).toMatch(/"ev":"evict","block":1/);
    // With the cache's counters reported, they give the unlocked block away at the hit itself.
    const counted = expectCaught({ ...scenario, cacheSizeEvents: true }, 'lockStartsAtParent', 'CacheSizeAccounted');
    if (counted.faulty.verdict.verdict === 'violation') expect(counted.faulty.verdict.finding.line).toBeLessThan(faulty.verdict.verdict === 'violation' ? faulty.verdict.finding.line : 0);
  });

  it('Z17 lockSkipsCounters: a hit revives parked blocks without moving them from evictable to protected', () => {
    const prefix = { id: 'sys', length: 8 };
    const scenario: Scenario = { mode: 'semi-pd', workload: [req('a', 0, 9, 1, { prefix }), req('c', 0.2, 9, 2, { prefix })], blocks: 16, blockSize: 4, prefixCaching: true, prefixCache: 'radix' };
    const { faulty } = expectCaught(scenario, 'lockSkipsCounters', 'CacheSizeAccounted');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.event).toMatch(/"ev":"cache_size","evictable":8,"protected":0/);
  });

  it('Z21 eagerCacheInsert: prefix blocks enter the cache at admission, before a step has written them', () => {
    const prefix = { id: 'sys', length: 8 };
    const scenario: Scenario = { mode: 'disaggregated', workload: [req('a', 0, 9, 2, { prefix }), req('c', 0.2, 9, 2, { prefix })], blocks: 16, blockSize: 4, prefixCaching: true };
    const { faulty } = expectCaught(scenario, 'eagerCacheInsert', 'CacheCoherent');
    if (faulty.verdict.verdict === 'violation') {
      expect(faulty.verdict.finding.event).toMatch(/"ev":"cache_insert","req":"a"/);
      expect(faulty.verdict.finding.message).toMatch(/not full/);
    }
  });

  it('Z22 refusedAdmissionKeepsHits: an admission refused for room keeps its match’s references, and the counters show the leak', () => {
    const prefix = { id: 'sys', length: 8 };
    // a caches two blocks and finishes; b fills most of the pool; c (with a's prefix) does not fit and is refused.
    const workload = [req('a', 0, 9, 1, { prefix }), req('b', 0.1, 20, 10), req('c', 0.105, 16, 1, { prefix })];
    const { faulty } = expectCaught({ mode: 'unified', workload, blocks: 8, blockSize: 4, prefixCaching: true }, 'refusedAdmissionKeepsHits', 'CacheSizeAccounted');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.event).toMatch(/"ev":"cache_size","evictable":0,"protected":8/);
  });

  it('Z3 finishFreesInFlight: the finish frees blocks that the next, already launched step still writes', () => {
    const { faulty } = expectCaught(oneToken, 'finishFreesInFlight', 'NoFreeWhileInFlight');
    expect(faulty.verdict.verdict === 'violation' && faulty.verdict.finding.line - 1).toBe(10);
    expectCaught({ mode: 'semi-pd', workload: smallWorkload(2, 12, { rate: 60 }), blocks: 60, blockSize: 4, asyncScheduling: true }, 'finishFreesInFlight', 'NoFreeWhileInFlight');
  });

  it('Z4 preemptionCascade: the spec allows each preemption, but the worker preempts again before its victim’s free', () => {
    checkTable('preemptionCascade', squeeze, 'NoPreemptionCascade');
    const clean = tracedRun(squeeze);
    expect(clean.verdict.verdict, explain(clean.verdict)).toBe('conforms');
    expect(clean.result.metrics.preemptions).toBeGreaterThan(0);
    expect(preemptionRule(clean.sink.events)).toBeNull();
    const faulty = tracedRun({ ...squeeze, faults: { preemptionCascade: true } });
    expect(faulty.verdict.verdict, explain(faulty.verdict)).toBe('conforms'); // the cascade breaks no rule of the spec
    expect(faulty.result.metrics.preemptions).toBeGreaterThan(clean.result.metrics.preemptions);
    expect(preemptionRule(faulty.sink.events)).toMatch(/D0 preempts \w before the blocks of its previous victim \w/);
  });

  it('Z5 freeTwiceOnAbortedTransfer: blocks freed while the transfer still uses them', () => {
    expectCaught(disagg(abortAt(first.req, (first.begin + first.end) / 2)), 'freeTwiceOnAbortedTransfer', 'NoFreeWhileInFlight');
  });

  it('Z6 abortWaitsForEndedTransfer: the free waits for a signal that already came (leak)', () => {
    expectCaught(disagg(abortAt(first.req, first.join + 0.05)), 'abortWaitsForEndedTransfer', 'EndedRequestsRelease');
  });

  it('Z7 rejectionNotTold: the decode side rejects a request, and its prefill-side blocks stay pinned (leak)', () => {
    // a fills the decode pool as it decodes; b, prefilled, waits for decode-side blocks and is rejected.
    const workload = [req('a', 0, 40, 20), req('b', 0.001, 28, 2), req('c', 0.5, 8, 2)];
    const { clean } = expectCaught({ mode: 'disaggregated', workload, blocks: 16, blockSize: 4, decodeAdmitTimeout: 0.05 }, 'rejectionNotTold', 'EndedRequestsRelease');
    expect(clean.result.records.map((r) => r.outcome)).toEqual(['finished', 'rejected', 'finished']);
    const abort = clean.sink.events.findIndex((e) => e.ev === 'abort' && e.req === 'b');
    expect(clean.sink.events[abort + 1]).toMatchObject({ ev: 'free', req: 'b' });
  });

  it('Z8 overlapDoubleFree: the overlapped step’s slot is freed ad hoc, then again by the finish path', () => {
    const { faulty } = expectCaught(oneToken, 'overlapDoubleFree', 'FreeListUnique');
    expect(faulty.verdict.verdict === 'violation' && faulty.verdict.finding.line - 1).toBe(12);
    expectCaught({ mode: 'nexus', workload: smallWorkload(3, 12, { rate: 60 }), blocks: 60, blockSize: 4, asyncScheduling: true }, 'overlapDoubleFree', 'FreeListUnique');
  });

  it('Z9 leakPartialBlockOnRetract: the retracted request never gets back to waiting (its padding block is still owned)', () => {
    expectCaught({ mode: 'semi-pd', workload: smallWorkload(6, 60, { rate: 100 }), blocks: 80, blockSize: 4 }, 'leakPartialBlockOnRetract', 'LifecycleOrder');
  });

  it('Z10 abortForgetsQueuedAfterTransfer: aborted while queued at the decode side, never freed (leak)', () => {
    const t = (queuedAfterTransfer.end + queuedAfterTransfer.join) / 2;
    expectCaught(disagg(abortAt(queuedAfterTransfer.req, t)), 'abortForgetsQueuedAfterTransfer', 'EndedRequestsRelease');
  });

  it('Z11 abortFreesDuringTransfer: decode-side blocks freed under the late write', () => {
    expectCaught(disagg(abortAt(first.req, (first.begin + first.end) / 2)), 'abortFreesDuringTransfer', 'NoFreeWhileInFlight');
  });

  it('Z12 duplicateRelease: the block goes on the free list twice, and is later handed to two owners', () => {
    const { faulty } = expectCaught({ mode: 'semi-pd', workload: smallWorkload(5, 20), blocks: 400, blockSize: 4 }, 'duplicateRelease', 'FreeListUnique');
    expect(handedOutTwice(faulty.sink.events).length).toBeGreaterThan(0);
  });

  it('Z13 locklessAllocator: a worker reads utilisation while the other holds the pool lock', () => {
    expectCaught({ mode: 'semi-pd', allocator: 'lock', workload: smallWorkload(7, 60, { rate: 100 }), blocks: 400, blockSize: 4 }, 'locklessAllocator', 'SingleOwner');
  });

  it('Z15 dropFifoOnResize: an old decode worker stops with its FIFO not handed over', () => {
    expectCaught(
      { mode: 'nexus', workload: smallWorkload(8, 80, { rate: 100 }), blocks: 400, blockSize: 4, policy: cyclingPolicy('nexus', 0.02) },
      'dropFifoOnResize',
      'ServedByLiveWorker',
    );
  });

  it('Z18 bonusKvMismatch: after an all-accepted verify, the next step writes the last draft where the bonus token is', () => {
    const speculative = { drafter: 'oracle', k: 1, acceptance: 1 } as const;
    const { faulty } = expectCaught({ mode: 'unified', workload: smallWorkload(9, 12, { output: 'uniform:4:20' }), blocks: 200, blockSize: 4, speculative }, 'bonusKvMismatch', 'KvMatchesOutput');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.message).toMatch(/writes token \d+ at position \d+, but its output holds token \d+ there/);
    expect(faulty.text.split('\n', 1)[0]).toMatch(/"version":3/);
  });

  it('Z19 verifyAdvancesWholeBlock: after a verify that rejects drafts, the next step starts past the rolled-back positions', () => {
    const speculative = { drafter: 'oracle', k: 3, acceptance: 0 } as const;
    const { faulty } = expectCaught({ mode: 'semi-pd', workload: smallWorkload(10, 12, { output: 'uniform:3:20' }), blocks: 200, blockSize: 4, speculative }, 'verifyAdvancesWholeBlock', 'StepsInOrder');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.message).toMatch(/step starts at position \d+, but \d+ position\(s\) are computed and accepted/);
  });

  it('Z20 windowAppliedToGlobalLayers: the window frees full-attention blocks of a live request', () => {
    const { faulty } = expectCaught({ mode: 'disaggregated', workload: smallWorkload(11, 12, { output: 'uniform:3:20' }), blocks: 400, blockSize: 4, slidingWindow: 2 }, 'windowAppliedToGlobalLayers', 'PartialFreeOnlyUnneeded');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.message).toMatch(/is live and group full has no window: every position it holds is still read/);
  });

  it("the engine's own bookkeeping check sees the duplicate release too", () => {
    const engine = new Engine({ mode: 'semi-pd', profile: PROFILE, workload: smallWorkload(5, 20), blocks: 400, blockSize: 4, faults: { duplicateRelease: true } });
    engine.runToCompletion();
    expect(engine.checkBookkeeping().join('\n')).toMatch(/pool 0: 0 owned \+ \d+ free ≠ 400/);
    const clean = new Engine({ mode: 'semi-pd', profile: PROFILE, workload: smallWorkload(5, 20), blocks: 400, blockSize: 4 });
    clean.runToCompletion();
    expect(clean.checkBookkeeping()).toEqual([]);
  });

  it('every fault switch has a test above, and one table entry per bug-zoo row that lives in the engine', () => {
    expect([...tested].sort()).toEqual([...FAULT_NAMES].sort());
    expect(FAULTS.map((f) => f.name).sort()).toEqual([...FAULT_NAMES].sort());
    expect(FAULTS.map((f) => f.zoo).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))).toEqual(
      ['Z1', 'Z2', 'Z3', 'Z4', 'Z5', 'Z6', 'Z7', 'Z8', 'Z9', 'Z10', 'Z11', 'Z12', 'Z13', 'Z15', 'Z16', 'Z17', 'Z18', 'Z19', 'Z20', 'Z21', 'Z22'],
    );
  });
});

describe('the options behind the newer switches, faults off', () => {
  const modes = MODES;

  it('NoPreemptionCascade holds on every fault-off run: every mode, synchronous and asynchronous, aborts, resizes', () => {
    let preemptions = 0;
    for (const mode of modes) {
      for (const asyncScheduling of [false, true]) {
        for (const seed of [1, 2, 3]) {
          const run = tracedRun({
            mode,
            workload: smallWorkload(seed, 30, { rate: 60, abortFraction: 0.2 }),
            blocks: 24 + 12 * seed,
            blockSize: 4,
            asyncScheduling,
            policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.05) : null,
          });
          expect(run.verdict.verdict, `${mode} async=${asyncScheduling} seed ${seed}\n${explain(run.verdict)}`).toBe('conforms');
          expect(preemptionRule(run.sink.events), `${mode} async=${asyncScheduling} seed ${seed}`).toBeNull();
          preemptions += run.result.metrics.preemptions;
        }
      }
    }
    expect(preemptions).toBeGreaterThan(100);
  });

  it.each(modes)('%s: with every new option, observe() and the engine’s books agree with the spec after every step', (mode) => {
    const workload = smallWorkload(4, 24, { rate: 50, abortFraction: 0.2, abortAfter: 0.15 }).map((r, i) => ({
      ...r,
      ...(i % 4 === 0 ? { n: 2 } : {}),
      ...(i % 3 === 0 ? { prefix: { id: `p${i % 2}`, length: Math.min(r.prompt, 12) } } : {}),
    }));
    const engine = new Engine({
      mode,
      profile: PROFILE,
      workload,
      blocks: 64,
      blockSize: 4,
      prefillChunk: 64,
      asyncScheduling: true,
      prefixCaching: true,
      ...(mode === 'disaggregated' ? { decodeAdmitTimeout: 0.03 } : {}),
      policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.04) : null,
    });
    const checker = new TraceChecker({ quiescent: true, system: { retireEnded: false } });
    checker.feed(JSON.stringify(engine.header));
    const events: TraceEvent[] = [];
    while (!engine.done) {
      const emitted = engine.stepOnce();
      for (const ev of emitted) checker.feed(JSON.stringify(ev));
      events.push(...emitted);
      expect(checker.done, 'the spec refused an event').toBe(false);
      expect(engine.checkBookkeeping()).toEqual([]);
      const sys = checker.sys!;
      const view = engine.observe();
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
      });
      expect(view.blocks).toEqual(sys.blocks.map((b) => b.context.owners[0] ?? null));
      expect(view.sharing!.holders).toEqual(sys.blocks.map((b) => b.context.owners));
      expect(view.sharing!.keys).toEqual(sys.blocks.map((b) => b.context.key));
    }
    const verdict = checker.end();
    expect(verdict.verdict, explain(verdict)).toBe('conforms');
    expect(events.some((e) => e.ev === 'fork')).toBe(true);
    expect(events.some((e) => e.ev === 'cache_hit')).toBe(true);
    expect(preemptionRule(events)).toBeNull();
  });

  it('asynchronous scheduling and forks keep every output: the same tokens as a synchronous run, and a fork the same as its parent', () => {
    for (const mode of modes) {
      const workload = smallWorkload(9, 20, { rate: 60 }).map((r, i) => (i % 5 === 0 ? { ...r, n: 2 } : r));
      const outputs = (asyncScheduling: boolean) => {
        const engine = new Engine({ mode, profile: PROFILE, workload, blocks: 48, blockSize: 4, asyncScheduling, recordOutputs: true });
        engine.runToCompletion();
        return engine.outputs();
      };
      const sync = outputs(false);
      expect(outputs(true)).toEqual(sync);
      for (const [id, tokens] of sync) if (id.includes('#')) expect(tokens, id).toEqual(sync.get(id.split('#')[0]));
    }
  });

  it('the same seed gives the same trace, with every new option on', () => {
    const scenario: Scenario = {
      mode: 'disaggregated',
      workload: smallWorkload(5, 20, { rate: 60 }).map((r, i) => ({ ...r, n: i % 3 === 0 ? 2 : 1, prefix: { id: 'p', length: Math.min(8, r.prompt) } })),
      blocks: 40,
      blockSize: 4,
      asyncScheduling: true,
      prefixCaching: true,
      decodeAdmitTimeout: 0.05,
    };
    expect(tracedRun(scenario).text).toBe(tracedRun(scenario).text);
  });

  it('refuses options that cannot apply', () => {
    const o = { mode: 'semi-pd' as const, profile: PROFILE, workload: smallWorkload(1, 3), blocks: 40, blockSize: 4 };
    expect(() => new Engine({ ...o, decodeAdmitTimeout: 1 })).toThrow(/disaggregated mode only/);
    expect(() => new Engine({ ...o, mode: 'disaggregated', allocator: 'lock', decodeAdmitTimeout: -1 })).toThrow(/≥ 0 seconds/);
    expect(() => new Engine({ ...o, workload: [req('a', 0, 4, 1, { n: 2 }), req('a#1', 0, 4, 1)] })).toThrow(/fork id 'a#1' is taken/);
    expect(() => new Engine({ ...o, workload: [req('a', 0, 4, 1, { prefix: { id: 'p', length: 5 } })] })).toThrow(/prefix length must be an integer in 1\.\.prompt/);
    expect(() => new Engine({ ...o, workload: [req('a', 0, 4, 1, { n: 0 })] })).toThrow(/n \(parallel samples\)/);
  });
});

// The core-attention disaggregation switches (engine/faults/cNN-*.ts, docs/cad.md) have no bug-zoo row: they
// are kept out of FAULTS (the zoo's table, self-test and campaign) and tested here, each on a unified run
// with the attention servers its file declares.
describe('core-attention disaggregation fault switches are caught by the spec', () => {
  const cadTested = new Set<CadFaultName>();
  const two: WorkloadRequest[] = [req('a', 0, 8, 2), req('b', 0, 4, 1)];

  function expectCadCaught(name: CadFaultName, workload: WorkloadRequest[], rule: string) {
    const info = CAD_FAULTS.find((f) => f.name === name)!;
    expect(info.zoo).toMatch(/^C\d+$/);
    expect(info.modes).toEqual(['unified']);
    expect(info.check.rules as readonly string[]).toContain(rule);
    cadTested.add(name);
    const scenario: Scenario = { mode: 'unified', workload, blocks: 64, blockSize: 4, attentionServers: info.options.attentionServers };
    const clean = tracedRun(scenario);
    expect(clean.verdict.verdict, `without the fault\n${explain(clean.verdict)}`).toBe('conforms');
    const faulty = tracedRun({ ...scenario, faults: { [name]: true } as EngineFaults });
    expect(faulty.verdict.verdict, 'with the fault').toBe('violation');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.rule, explain(faulty.verdict)).toBe(rule);
    return { clean, faulty };
  }

  it('C1 pingPongFlipsEarly: a buffer takes the next task before the result in it is read back', () => {
    const { faulty } = expectCadCaught('pingPongFlipsEarly', two, 'BufferNotReused');
    if (faulty.verdict.verdict === 'violation') {
      expect(faulty.verdict.finding.message).toMatch(/holds task c\d+'s unread result; loading task c\d+ into it would overwrite them/);
      expect(faulty.verdict.finding.line).toBeLessThanOrEqual(20);
    }
    expectCadCaught('pingPongFlipsEarly', smallWorkload(3, 12), 'BufferNotReused');
  });

  it('C2 lostTaskForgotten: a lost server’s task is never dispatched again, and its step ends without it', () => {
    const { faulty } = expectCadCaught('lostTaskForgotten', two, 'StepWaitsForTasks');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.message).toMatch(/task c\d+ of the step is created: its attention result has not been read back/);
    expectCadCaught('lostTaskForgotten', smallWorkload(4, 12), 'StepWaitsForTasks');
  });

  it('C3 redispatchAfterReturn: a lost server’s task whose result was read back is dispatched again', () => {
    const { faulty } = expectCadCaught('redispatchAfterReturn', two, 'TaskComputedOnce');
    if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.message).toMatch(/is consumed on A1; dispatching it again would compute it twice/);
    expectCadCaught('redispatchAfterReturn', smallWorkload(5, 12), 'TaskComputedOnce');
  });

  it('every core-attention switch has a test above, none is in the bug zoo, and each needs attention servers', () => {
    expect([...cadTested].sort()).toEqual([...CAD_FAULT_NAMES].sort());
    for (const f of CAD_FAULTS) {
      expect((FAULT_NAMES as readonly string[]).includes(f.name)).toBe(false);
      expect(() => new Engine({ mode: 'unified', profile: PROFILE, workload: two, blocks: 64, blockSize: 4, faults: { [f.name]: true } })).toThrow(/needs attention servers/);
    }
  });
});

describe('the fault table of docs/engine.md', () => {
  it('links each fault to its own file, which declares that fault', async () => {
    const { faultTableMarkdown } = await import('../engine/faults/table.ts');
    const { existsSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const links = [...faultTableMarkdown().matchAll(/\(\.\.\/(engine\/faults\/z\d\d-[a-z-]+\.ts)\)/g)].map((m) => m[1]);
    expect(links).toHaveLength(FAULTS.length);
    for (const [i, link] of links.entries()) {
      const file = join(import.meta.dirname, '..', link);
      expect(existsSync(file), link).toBe(true);
      expect(readFileSync(file, 'utf8')).toContain(`name: '${FAULTS[i].name}'`);
    }
  });
});
