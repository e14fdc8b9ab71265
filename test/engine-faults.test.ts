// Each fault switch reintroduces a bug-zoo mechanism in the engine, and the spec rejects the run's trace
// (with the rule that names the broken property), while the same scenario without the fault conforms.
import { describe, expect, it } from 'vitest';
import type { EngineFaults } from '../engine/faults.ts';
import { FAULT_NAMES } from '../engine/faults.ts';
import { loadAzure } from '../engine/workloads/azure.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import { Engine } from '../engine/engine.ts';
import { cyclingPolicy, explain, PROFILE, smallWorkload, tracedRun } from './engine-fixtures.ts';

type Scenario = Parameters<typeof tracedRun>[0];

function expectCaught(scenario: Scenario, faults: EngineFaults, rule: string) {
  const clean = tracedRun(scenario);
  expect(clean.verdict.verdict, `without the fault\n${explain(clean.verdict)}`).toBe('conforms');
  const faulty = tracedRun({ ...scenario, faults });
  expect(faulty.verdict.verdict, 'with the fault').toBe('violation');
  if (faulty.verdict.verdict === 'violation') expect(faulty.verdict.finding.rule, explain(faulty.verdict)).toBe(rule);
}

// A disaggregated run of the first Azure conversation requests, and the times of one request's transfer.
const azure = loadAzure('conv').slice(0, 40);
const disagg = (workload: WorkloadRequest[]): Scenario => ({ mode: 'disaggregated', workload, blocks: 4000, blockSize: 16 });
const base = tracedRun(disagg(azure));
const transfers = base.sink.events.filter((e) => e.ev === 'transfer_begin').map((b) => {
  const end = base.sink.events.find((e) => e.ev === 'transfer_end' && e.xfer === b.xfer)!;
  const join = base.sink.events.find((e) => e.ev === 'join' && e.req === b.req)!;
  return { req: b.req, begin: b.t, end: end.t, join: join.t };
});
const abortAt = (req: string, t: number) => azure.map((r) => (r.id === req ? { ...r, abortAt: t } : r));
const first = transfers[0];
const queuedAfterTransfer = transfers.find((x) => x.join > x.end)!;

describe('engine fault switches are caught by the spec', () => {
  it('the scenarios exist: a transfer to abort in flight, and one queued after its transfer', () => {
    expect(first.end).toBeGreaterThan(first.begin);
    expect(queuedAfterTransfer.join).toBeGreaterThan(queuedAfterTransfer.end);
  });

  it('Z8/Z12 duplicateRelease: the block goes on the free list twice', () => {
    expectCaught({ mode: 'semi-pd', workload: smallWorkload(5, 20), blocks: 400, blockSize: 4 }, { duplicateRelease: true }, 'FreeListUnique');
  });

  it('Z9 leakPartialBlockOnRetract: the retracted request never gets back to waiting (its padding block is still owned)', () => {
    expectCaught({ mode: 'semi-pd', workload: smallWorkload(6, 60, { rate: 100 }), blocks: 80, blockSize: 4 }, { leakPartialBlockOnRetract: true }, 'LifecycleOrder');
  });

  it('Z13 locklessAllocator: a worker reads utilisation while the other holds the pool lock', () => {
    expectCaught({ mode: 'semi-pd', allocator: 'lock', workload: smallWorkload(7, 60, { rate: 100 }), blocks: 400, blockSize: 4 }, { locklessAllocator: true }, 'SingleOwner');
  });

  it('Z15 dropFifoOnResize: an old decode worker stops with its FIFO not handed over', () => {
    expectCaught(
      { mode: 'nexus', workload: smallWorkload(8, 80, { rate: 100 }), blocks: 400, blockSize: 4, policy: cyclingPolicy('nexus', 0.02) },
      { dropFifoOnResize: true },
      'ServedByLiveWorker',
    );
  });

  it('Z5 freeTwiceOnAbortedTransfer: blocks freed while the transfer still uses them', () => {
    expectCaught(disagg(abortAt(first.req, (first.begin + first.end) / 2)), { freeTwiceOnAbortedTransfer: true }, 'NoFreeWhileInFlight');
  });

  it('Z11 abortFreesDuringTransfer: decode-side blocks freed under the late write', () => {
    expectCaught(disagg(abortAt(first.req, (first.begin + first.end) / 2)), { abortFreesDuringTransfer: true }, 'NoFreeWhileInFlight');
  });

  it('Z6 abortWaitsForEndedTransfer: the free waits for a signal that already came (leak)', () => {
    expectCaught(disagg(abortAt(first.req, first.join + 0.05)), { abortWaitsForEndedTransfer: true }, 'EndedRequestsRelease');
  });

  it('Z10 abortForgetsQueuedAfterTransfer: aborted while queued at the decode side, never freed (leak)', () => {
    const t = (queuedAfterTransfer.end + queuedAfterTransfer.join) / 2;
    expectCaught(disagg(abortAt(queuedAfterTransfer.req, t)), { abortForgetsQueuedAfterTransfer: true }, 'EndedRequestsRelease');
  });

  it("the engine's own bookkeeping check sees the duplicate release too", () => {
    const engine = new Engine({ mode: 'semi-pd', profile: PROFILE, workload: smallWorkload(5, 20), blocks: 400, blockSize: 4, faults: { duplicateRelease: true } });
    engine.runToCompletion();
    expect(engine.checkBookkeeping().join('\n')).toMatch(/pool 0: 0 owned \+ \d+ free ≠ 400/);
    const clean = new Engine({ mode: 'semi-pd', profile: PROFILE, workload: smallWorkload(5, 20), blocks: 400, blockSize: 4 });
    clean.runToCompletion();
    expect(clean.checkBookkeeping()).toEqual([]);
  });

  it('every fault switch has a test above', () => {
    expect(FAULT_NAMES).toHaveLength(8);
  });
});
