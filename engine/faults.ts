// Fault switches: each reintroduces the mechanism of a real bug from the bug zoo (docs/bug-zoo.md) into
// the engine, so that the kit can show it catches the bug. All are off by default. Each switch changes one
// named place of engine/engine.ts:
//
//   forkRequest         n > 1: the fork copies the parent's blocks      forkSharesLastBlock (Z1)
//   takeBlocks          allocate's take; a reissued block leaves the    prefixCacheKeepsEvicted (Z2)
//                       prefix cache's map
//   finishRequest       the finish path's free                          finishFreesInFlight (Z3)
//   ensureBlocks        preemption when short of blocks                 preemptionCascade (Z4)
//   abortRequest        the abort path                                  freeTwiceOnAbortedTransfer (Z5),
//                                                                       abortWaitsForEndedTransfer (Z6),
//                                                                       abortForgetsQueuedAfterTransfer (Z10),
//                                                                       abortFreesDuringTransfer (Z11)
//   rejectAtDecode      the decode side refuses a prefilled request     rejectionNotTold (Z7)
//   settle              deferred free when a step/transfer ends         overlapDoubleFree (Z8); the other
//                                                                       half of Z5 and Z6
//   completeRetraction  preemption's free and requeue                   leakPartialBlockOnRetract (Z9)
//   freePool            the release of a request's blocks               duplicateRelease (Z12)
//   allocate            query → take → update utilisation               locklessAllocator (Z13)
//   retireWorker        resize migration                                dropFifoOnResize (Z15)
//
// Z1 needs the workload field `n`, Z2 the option `prefixCaching` and the field `prefix`, Z3, Z4 and Z8 the
// option `asyncScheduling`, Z7 the option `decodeAdmitTimeout`. Z4's cascade is allowed by the spec: the
// trace-level rule NoPreemptionCascade catches it. Z14 is a policy bug (engine/policies/semi-pd-z14.ts),
// not an engine switch. FAULTS below tells, for each switch, where it can show (modes, engine options,
// workload features) and what catches it, so that a property campaign can generate configurations in which
// every fault has a chance to manifest.

export interface EngineFaults {
  /**
   * Z1 (vLLM #1556): a request with n > 1 parallel samples forks when its prompt is prefilled; the fork should
   * copy the parent's blocks into new ones, but it shares the parent's last block instead: both tables hold
   * it (the child's allocation names a block that has an owner), and both later free it.
   */
  forkSharesLastBlock?: boolean;
  /**
   * Z2 (vLLM PR #4764): with prefix caching, a cached block taken from the free list for another request
   * (evicted and reissued) is not removed from the prefix map, so the prefix's next request is served it as
   * a cache hit while its new owner holds it.
   */
  prefixCacheKeepsEvicted?: boolean;
  /**
   * Z3 (vLLM PR #45357): with asynchronous scheduling, a request whose stop condition shows in step N's
   * output is finished after step N + 1 (which includes it) was launched; the finish frees its blocks at once
   * instead of when step N + 1 ends, while that step still writes them.
   */
  finishFreesInFlight?: boolean;
  /**
   * Z4 (vLLM #49674): with asynchronous scheduling a victim still used by the step in flight frees nothing
   * until that step ends; the scheduler, still short of blocks, preempts again in the same pass instead of
   * waiting for that deferred free: a preemption cascade (more victims than needed, possibly all).
   */
  preemptionCascade?: boolean;
  /** Z5 (vLLM PR #33377): an abort during a KV transfer frees the request's blocks at once, and again when the transfer ends. */
  freeTwiceOnAbortedTransfer?: boolean;
  /** Z6 (vLLM PR #32255): an abort after the transfer already ended still waits for its completion signal, which never comes (a leak). */
  abortWaitsForEndedTransfer?: boolean;
  /**
   * Z7 (vLLM PR #41269): when the decode side rejects a prefilled request before admitting it (no decode-side
   * blocks within `decodeAdmitTimeout`), the prefill side is never told, so its blocks stay pinned (a leak).
   */
  rejectionNotTold?: boolean;
  /**
   * Z8 (SGLang PR #12224): with asynchronous (overlap) scheduling, a request that finished while the
   * overlapped step ran has the slot of that step (its last block) freed ad hoc when the step ends, and
   * then the finish path frees its whole table, that block included: freed twice.
   */
  overlapDoubleFree?: boolean;
  /** Z9 (SGLang PRs #4977, #9989): retracting a request whose cached length is not block-aligned forgets its last, partial block (a leak). */
  leakPartialBlockOnRetract?: boolean;
  /** Z10 (SGLang PR #9817): a request pre-allocated, transferred and queued at the decode side, then aborted, is never freed. */
  abortForgetsQueuedAfterTransfer?: boolean;
  /** Z11 (SGLang #24527): an abort during a transfer frees the decode-side blocks at once, while the transfer still writes them. */
  abortFreesDuringTransfer?: boolean;
  /**
   * Z12 (TensorRT-LLM PR #14937): the first finished request's blocks are released twice (the release path
   * runs twice); the pool's free queue takes every block again, so it really holds them twice and later
   * allocations hand the same block to two owners.
   */
  duplicateRelease?: boolean;
  /**
   * Z13 (semi-PD §4.4): allocation does not take the pool lock. Every worker that allocates in one scheduling
   * pass reads utilisation at the start of the pass (the two processes' schedulers run at the same time), so
   * their query/take/update steps interleave and both take the same free blocks.
   */
  locklessAllocator?: boolean;
  /** Z15 (semi-PD §4.3): during a resize an old decode worker migrates its running requests but not its FIFO, then stops. */
  dropFifoOnResize?: boolean;
}

export type FaultName = keyof EngineFaults;

/** Every fault switch, in bug-zoo order (Z12 keeps its historical name `duplicateRelease`, which the CLI's examples use). */
export const FAULT_NAMES = [
  'duplicateRelease',
  'forkSharesLastBlock',
  'prefixCacheKeepsEvicted',
  'finishFreesInFlight',
  'preemptionCascade',
  'freeTwiceOnAbortedTransfer',
  'abortWaitsForEndedTransfer',
  'rejectionNotTold',
  'overlapDoubleFree',
  'leakPartialBlockOnRetract',
  'abortForgetsQueuedAfterTransfer',
  'abortFreesDuringTransfer',
  'locklessAllocator',
  'dropFifoOnResize',
] as const satisfies readonly FaultName[];

export function anyFault(faults: EngineFaults): boolean {
  return FAULT_NAMES.some((name) => faults[name] === true);
}

// ---------------------------------------------------------------------------------------------
// Where each fault can show, and what catches it (for property campaigns)

/** Engine modes (engine/engine.ts's Mode; repeated here so that this table has no imports). */
export type FaultMode = 'semi-pd' | 'nexus' | 'disaggregated' | 'unified';

/** Workload features a fault needs before it can show. */
export type WorkloadNeed =
  /** Some requests have `abortAt`, landing in the window the fault describes (see `window`). */
  | 'aborts'
  /** Some requests share a `prefix` (same id, length ≥ one block), arriving after one another. */
  | 'sharedPrefix'
  /** Some requests have `n` ≥ 2 (parallel samples). */
  | 'parallelSamples'
  /** KV pressure: the pool is small for the prompts and outputs, so decode workers preempt. */
  | 'kvPressure'
  /** Requests that decode for several steps (outputs ≥ 2 tokens), so that a finish follows a decode step. */
  | 'multiTokenOutputs'
  /** Prompt + generated lengths that are not multiples of the block size. */
  | 'unalignedLengths'
  /** The decode pool fills up while prefilled requests wait for it (disaggregated). */
  | 'decodeBacklog';

/** What the campaign's check is: the spec's verdict on the trace, or the trace-level preemption rule. */
export type FaultCheck =
  | { kind: 'spec'; rules: readonly string[] }
  /**
   * Trace-level liveness rule (not in the spec): after `preempt v` by worker W, W does not preempt another
   * request before a `free` of v's blocks. The fault-off engine keeps it on every run.
   */
  | { kind: 'trace'; rules: readonly ['NoPreemptionCascade'] };

export interface FaultInfo {
  name: FaultName;
  /** Bug-zoo row. */
  zoo: string;
  /** The engine method the switch changes. */
  place: string;
  /** The mechanism, in one sentence. */
  says: string;
  /** Modes in which it can manifest. */
  modes: readonly FaultMode[];
  /** Engine options it needs (spread them into EngineOptions); `{}` when the defaults do. */
  options: Readonly<{
    asyncScheduling?: true;
    prefixCaching?: true;
    allocEvents?: 'steps';
    allocator?: 'lock';
    /** Any finite number of seconds ≥ 0 (the value shown is a good default for small workloads). */
    decodeAdmitTimeout?: number;
  }>;
  /** Workload features it needs. */
  workload: readonly WorkloadNeed[];
  /** It needs a policy that resizes (semi-PD and Nexus only). */
  resizing?: true;
  /** When an abort must land, for the abort faults. */
  window?: string;
  /** Anything else a campaign should know. */
  note?: string;
  /** What catches it. */
  check: FaultCheck;
}

export const FAULTS: readonly FaultInfo[] = [
  {
    name: 'forkSharesLastBlock',
    zoo: 'Z1',
    place: 'forkRequest',
    says: 'the fork of a request with n ≥ 2 shares the parent’s last block instead of copying it, so two tables hold it and both free it',
    modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
    options: {},
    workload: ['parallelSamples'],
    check: { kind: 'spec', rules: ['SingleOwner', 'FreeListUnique'] },
  },
  {
    name: 'prefixCacheKeepsEvicted',
    zoo: 'Z2',
    place: 'takeBlocks',
    says: 'a cached prefix block reissued from the free list stays in the prefix map, so it is served as a cache hit while another request owns it',
    modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
    options: { prefixCaching: true },
    workload: ['sharedPrefix'],
    check: { kind: 'spec', rules: ['SingleOwner'] },
  },
  {
    name: 'finishFreesInFlight',
    zoo: 'Z3',
    place: 'finishRequest',
    says: 'with asynchronous scheduling, the finish of a request whose next step is already in flight frees its blocks at once, under that step',
    modes: ['unified', 'semi-pd', 'nexus', 'disaggregated'],
    options: { asyncScheduling: true },
    workload: [],
    note: 'unified: any request (one output token is enough: 10 events); decode workers: outputs of ≥ 2 tokens',
    check: { kind: 'spec', rules: ['NoFreeWhileInFlight'] },
  },
  {
    name: 'preemptionCascade',
    zoo: 'Z4',
    place: 'ensureBlocks',
    says: 'with asynchronous scheduling, a preemption whose free is deferred by the step in flight is followed at once by another, instead of waiting for that free',
    modes: ['semi-pd', 'nexus', 'disaggregated'],
    options: { asyncScheduling: true },
    workload: ['kvPressure', 'multiTokenOutputs'],
    note: 'only a decode worker schedules while its step runs (a unified worker schedules at the step end, with nothing in flight); the spec itself accepts the cascade',
    check: { kind: 'trace', rules: ['NoPreemptionCascade'] },
  },
  {
    name: 'freeTwiceOnAbortedTransfer',
    zoo: 'Z5',
    place: 'abortRequest + settle',
    says: 'an abort during a KV transfer frees the request’s blocks at once and again when the transfer ends',
    modes: ['disaggregated'],
    options: {},
    workload: ['aborts'],
    window: 'between transfer_begin and transfer_end of the request',
    check: { kind: 'spec', rules: ['NoFreeWhileInFlight', 'FreeListUnique'] },
  },
  {
    name: 'abortWaitsForEndedTransfer',
    zoo: 'Z6',
    place: 'abortRequest',
    says: 'an abort after the request’s transfer ended waits for the transfer’s completion signal, which already came: its blocks are never freed',
    modes: ['disaggregated'],
    options: {},
    workload: ['aborts'],
    window: 'after the request’s transfer_end, before it finishes',
    note: 'a leak that starves later requests is reported first as EveryRequestEnds under --quiescent; without it (or with room to spare) as EndedRequestsRelease',
    check: { kind: 'spec', rules: ['EndedRequestsRelease'] },
  },
  {
    name: 'rejectionNotTold',
    zoo: 'Z7',
    place: 'rejectAtDecode',
    says: 'the decode side rejects a prefilled request it has no blocks for within decodeAdmitTimeout, and the prefill side, never told, keeps its blocks',
    modes: ['disaggregated'],
    options: { decodeAdmitTimeout: 0.05 },
    workload: ['decodeBacklog'],
    note: 'a leak that starves later requests is reported first as EveryRequestEnds under --quiescent; without it (or with room to spare) as EndedRequestsRelease',
    check: { kind: 'spec', rules: ['EndedRequestsRelease'] },
  },
  {
    name: 'overlapDoubleFree',
    zoo: 'Z8',
    place: 'settle',
    says: 'with overlap scheduling, a request that finished while the overlapped step ran has that step’s slot (its last block) freed ad hoc, then its whole table by the finish path',
    modes: ['unified', 'semi-pd', 'nexus', 'disaggregated'],
    options: { asyncScheduling: true },
    workload: [],
    note: 'unified: any request (one output token is enough: 12 events); decode workers: outputs of ≥ 2 tokens',
    check: { kind: 'spec', rules: ['FreeListUnique'] },
  },
  {
    name: 'leakPartialBlockOnRetract',
    zoo: 'Z9',
    place: 'completeRetraction',
    says: 'retracting a request whose cached length is not block-aligned drops its last, partial block from the table without freeing it',
    modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
    options: {},
    workload: ['kvPressure', 'unalignedLengths'],
    check: { kind: 'spec', rules: ['BlocksAccounted', 'LifecycleOrder', 'EndedRequestsRelease', 'QuiescentAllFree'] },
  },
  {
    name: 'abortForgetsQueuedAfterTransfer',
    zoo: 'Z10',
    place: 'abortRequest',
    says: 'a request pre-allocated, transferred and queued at the decode side, then aborted, is never freed',
    modes: ['disaggregated'],
    options: {},
    workload: ['aborts'],
    window: 'after the request’s transfer_end, before its join',
    note: 'a leak that starves later requests is reported first as EveryRequestEnds under --quiescent; without it (or with room to spare) as EndedRequestsRelease',
    check: { kind: 'spec', rules: ['EndedRequestsRelease'] },
  },
  {
    name: 'abortFreesDuringTransfer',
    zoo: 'Z11',
    place: 'abortRequest',
    says: 'an abort during a transfer frees the decode-side blocks at once while the transfer still writes them',
    modes: ['disaggregated'],
    options: {},
    workload: ['aborts'],
    window: 'between transfer_begin and transfer_end of the request',
    check: { kind: 'spec', rules: ['NoFreeWhileInFlight'] },
  },
  {
    name: 'duplicateRelease',
    zoo: 'Z12',
    place: 'freePool',
    says: 'the first finished request’s blocks are released twice; the free queue holds them twice and later hands them to two owners',
    modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
    options: {},
    workload: [],
    check: { kind: 'spec', rules: ['FreeListUnique', 'SingleOwner'] },
  },
  {
    name: 'locklessAllocator',
    zoo: 'Z13',
    place: 'allocate',
    says: 'the two workers allocate without the pool lock, from utilisation read at the start of the scheduling pass, and take the same free blocks',
    modes: ['semi-pd', 'nexus'],
    options: { allocator: 'lock', allocEvents: 'steps' },
    workload: [],
    check: { kind: 'spec', rules: ['SingleOwner'] },
  },
  {
    name: 'dropFifoOnResize',
    zoo: 'Z15',
    place: 'retireWorker',
    says: 'an old decode worker stops after migrating its running requests but not its FIFO',
    modes: ['semi-pd', 'nexus'],
    options: {},
    workload: [],
    resizing: true,
    check: { kind: 'spec', rules: ['ServedByLiveWorker'] },
  },
];
