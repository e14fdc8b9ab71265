// The SM partition and its resize handoff (semi-PD §4.3), and the workers it hands requests between.
//
// partition — one per system: stable(epoch, x, y) → resize requested → the next epoch's workers start and
//             map the same weights and KV pool while the old ones serve (delayed switch) → once all are
//             ready, each old worker hands its queue to its successor and stops after its own current
//             iteration, independently of the other (asynchronous switch) → stable(epoch + 1).
// worker    — one per worker: starting → idle ⇄ busy (an iteration in flight) → stopped. It counts the
//             requests it serves and keeps its FIFO of handed-off requests in order.
import { and, setup } from 'xstate';
import { assignActions, guardChecks, type GuardDef, type MachineParts, type Narrow, type Update } from './machine-kit.ts';

// ---------------------------------------------------------------------------------------------
// worker

export interface WorkerContext {
  role: 'prefill' | 'decode' | 'unified';
  epoch: number;
  share: number;
  gpu: number;
  /** Requests this worker serves (including those on its FIFO). */
  load: number;
  /** Requests handed off to this worker, in the order it must pop them. */
  fifo: readonly string[];
  /** Its iterations in flight. */
  inFlight: number;
}

export type WorkerEvent =
  | { type: 'worker_ready' | 'worker_stop' | 'schedule' | 'step_begin' | 'step_end' }
  | { type: 'handoff' | 'migrate'; side: 'from' | 'to'; req: string; queued: boolean }
  | { type: 'join' | 'preempt' | 'finish' | 'abort'; req: string }
  | { type: 'fork'; req: string };

type WEv<T extends WorkerEvent['type']> = Narrow<WorkerEvent, T>;

const workerGuards = {
  atFifoHead: {
    check: ({ context, event }) => context.fifo[0] === (event as WEv<'join'>).req,
    protects: 'LifecycleOrder',
    explain: (c, e) => `${(e as WEv<'join'>).req} is not at the head of the FIFO (head: ${c.fifo[0] ?? 'empty'})`,
  },
  handedOver: {
    check: ({ context }) => context.load === 0 && context.fifo.length === 0,
    protects: 'ServedByLiveWorker',
    explain: (c) => `still serves ${c.load} request(s)${c.fifo.length ? ` (FIFO: ${c.fifo.join(', ')})` : ''}; stopping would drop them`,
  },
  // Branch guards.
  unified: { check: ({ context }) => context.role === 'unified', explain: () => '' },
  sender: { check: ({ event }) => (event as WEv<'handoff'>).side === 'from', explain: () => '' },
  queued: { check: ({ event }) => (event as WEv<'migrate'>).queued, explain: () => '' },
  notQueued: { check: ({ context, event }) => !context.fifo.includes((event as WEv<'join'>).req), explain: () => '' },
  lastIteration: { check: ({ context }) => context.inFlight === 1, explain: () => '' },
} satisfies Record<string, GuardDef<WorkerContext, WorkerEvent>>;

const without = (fifo: readonly string[], req: string) => (fifo.includes(req) ? fifo.filter((r) => r !== req) : fifo);

const workerUpdates = {
  adopt: ({ context }) => ({ load: context.load + 1 }),
  enqueue: ({ context, event }) => ({ load: context.load + 1, fifo: [...context.fifo, (event as WEv<'handoff'>).req] }),
  release: ({ context, event }) => ({ load: context.load - 1, fifo: without(context.fifo, (event as WEv<'finish'>).req) }),
  pop: ({ context }) => ({ fifo: context.fifo.slice(1) }),
  beginIteration: ({ context }) => ({ inFlight: context.inFlight + 1 }),
  endIteration: ({ context }) => ({ inFlight: context.inFlight - 1 }),
} satisfies Record<string, Update<WorkerContext, WorkerEvent>>;

export const workerParts: MachineParts<WorkerContext, WorkerEvent> = {
  guards: workerGuards,
  updates: workerUpdates,
  unhandled: (state, _c, e) => {
    if (state === 'starting') return { protects: 'WorkersServeWhenReady', message: `is still starting; it serves only after worker_ready` };
    if (state === 'stopped') return { protects: 'ServedByLiveWorker', message: `has stopped; '${e.type}' cannot involve it` };
    if (e.type === 'worker_stop') return { protects: 'ResizeHandoff', message: `has an iteration in flight; it stops only after its current iteration` };
    if (e.type === 'step_end') return { protects: 'LifecycleOrder', message: `has no iteration in flight` };
    return { protects: 'WorkersServeWhenReady', message: `is ${state}; '${e.type}' does not apply` };
  },
};

/** What a serving worker (idle or busy) does whatever its iterations. */
const serving = {
  schedule: { actions: 'adopt' },
  fork: { actions: 'adopt' }, // trace v2: the forked child is served where its parent is
  // Within one GPU the handoff is semi-PD's FIFO; across GPUs (disaggregation) requests wait for their KV
  // transfers, which may finish in any order, so they are not queued in order.
  handoff: [{ guard: 'sender', actions: 'release' }, { guard: 'queued', actions: 'enqueue' }, { actions: 'adopt' }],
  migrate: [{ guard: 'sender', actions: 'release' }, { guard: 'queued', actions: 'enqueue' }, { actions: 'adopt' }],
  join: [{ guard: 'unified' }, { guard: 'notQueued' }, { guard: 'atFifoHead', actions: 'pop' }],
  preempt: { actions: 'release' },
  finish: { actions: 'release' },
  abort: { actions: 'release' },
} as const;

export const workerMachine = setup({
  types: { context: {} as WorkerContext, events: {} as WorkerEvent, input: {} as Omit<WorkerContext, 'load' | 'fifo' | 'inFlight'> & { ready: boolean } },
  guards: guardChecks(workerGuards),
  actions: assignActions(workerUpdates),
}).createMachine({
  id: 'worker',
  initial: 'starting',
  context: ({ input }) => ({ role: input.role, epoch: input.epoch, share: input.share, gpu: input.gpu, load: 0, fifo: [], inFlight: 0 }),
  states: {
    starting: { on: { worker_ready: 'idle' } },
    idle: {
      on: {
        ...serving,
        step_begin: { target: 'busy', actions: 'beginIteration' },
        worker_stop: { guard: 'handedOver', target: 'stopped' },
      },
    },
    busy: {
      on: {
        ...serving,
        step_begin: { actions: 'beginIteration' }, // asynchronous scheduling: the next iteration is launched early
        step_end: [{ guard: 'lastIteration', target: 'idle', actions: 'endIteration' }, { actions: 'endIteration' }],
      },
    },
    stopped: {},
  },
});

// ---------------------------------------------------------------------------------------------
// partition

export interface PartitionContext {
  epoch: number;
  prefill: number;
  decode: number;
  rule: 'oversubscribe' | 'exact';
  target: { prefill: number; decode: number } | null;
  /** Workers of the current epoch that have not stopped. */
  oldLive: number;
  /** Workers the next epoch needs (one per live worker of the current one), started, and ready. */
  needed: number;
  started: number;
  ready: number;
}

export type PartitionEvent =
  | { type: 'resize_begin'; epoch: number; prefill: number; decode: number; liveWorkers: number }
  | { type: 'worker_start'; epoch: number; role: string; share: number }
  | { type: 'worker_ready' | 'worker_stop'; epoch: number }
  | { type: 'migrate'; fromEpoch: number; toEpoch: number; fromRole: string; toRole: string }
  | { type: 'resize_end'; epoch: number };

type PEv<T extends PartitionEvent['type']> = Narrow<PartitionEvent, T>;

const partitionGuards = {
  nextEpoch: {
    check: ({ context, event }) => (event as PEv<'resize_begin'>).epoch === context.epoch + 1,
    protects: 'ResizeHandoff',
    explain: (c, e) => `resize to epoch ${(e as PEv<'resize_begin'>).epoch}, but the current epoch is ${c.epoch} (next: ${c.epoch + 1})`,
  },
  shareRuleHolds: {
    check: ({ context, event }) => context.rule !== 'exact' || (event as PEv<'resize_begin'>).prefill + (event as PEv<'resize_begin'>).decode === 100,
    protects: 'ShareRule',
    explain: (_, e) => `shares ${(e as PEv<'resize_begin'>).prefill} + ${(e as PEv<'resize_begin'>).decode} ≠ 100 under the exact rule (Nexus green contexts)`,
  },
  ofNextEpoch: {
    check: ({ context, event }) => (event as PEv<'worker_start'>).epoch === context.epoch + 1,
    protects: 'ResizeHandoff',
    explain: (c, e) => `worker of epoch ${(e as PEv<'worker_start'>).epoch}, but the resize is to epoch ${c.epoch + 1}`,
  },
  matchesTarget: {
    check: ({ context, event }) => {
      const e = event as PEv<'worker_start'>;
      return e.role === 'unified' || e.share === (e.role === 'prefill' ? context.target!.prefill : context.target!.decode);
    },
    protects: 'ResizeHandoff',
    explain: (c, e) => {
      const s = e as PEv<'worker_start'>;
      return `${s.role} share ${s.share}, but the resize asked for ${s.role === 'prefill' ? c.target!.prefill : c.target!.decode}`;
    },
  },
  roomForWorker: {
    check: ({ context }) => context.started < context.needed,
    protects: 'ResizeHandoff',
    explain: (c) => `the next epoch needs ${c.needed} worker(s) and all have started`,
  },
  isNewWorker: {
    check: ({ context, event }) => (event as PEv<'worker_ready'>).epoch === context.epoch + 1,
    protects: 'ResizeHandoff',
    explain: (c, e) => `a worker of epoch ${(e as PEv<'worker_ready'>).epoch} cannot become ready during the resize to epoch ${c.epoch + 1}`,
  },
  isOldWorker: {
    check: ({ context, event }) => (event as PEv<'worker_stop'>).epoch === context.epoch,
    protects: 'ResizeHandoff',
    explain: (c, e) => `only workers of epoch ${c.epoch} stop in this resize, not one of epoch ${(e as PEv<'worker_stop'>).epoch}`,
  },
  oldToNew: {
    check: ({ context, event }) => {
      const e = event as PEv<'migrate'>;
      return e.fromEpoch === context.epoch && e.toEpoch === context.epoch + 1;
    },
    protects: 'ResizeHandoff',
    explain: (c, e) => `requests move from epoch ${c.epoch} to ${c.epoch + 1}, not from ${(e as PEv<'migrate'>).fromEpoch} to ${(e as PEv<'migrate'>).toEpoch}`,
  },
  sameRole: {
    check: ({ event }) => (event as PEv<'migrate'>).fromRole === (event as PEv<'migrate'>).toRole,
    protects: 'ResizeHandoff',
    explain: (_, e) => `a ${(e as PEv<'migrate'>).fromRole} worker hands its requests to its ${(e as PEv<'migrate'>).fromRole} successor, not to a ${(e as PEv<'migrate'>).toRole} worker`,
  },
  oldAllStopped: {
    check: ({ context }) => context.oldLive === 0,
    protects: 'ResizeHandoff',
    explain: (c) => `${c.oldLive} worker(s) of epoch ${c.epoch} have not stopped`,
  },
  endsThisResize: {
    check: ({ context, event }) => (event as PEv<'resize_end'>).epoch === context.epoch + 1,
    protects: 'ResizeHandoff',
    explain: (c, e) => `resize_end for epoch ${(e as PEv<'resize_end'>).epoch}, but the resize is to epoch ${c.epoch + 1}`,
  },
  // Branch guard.
  lastToBeReady: { check: ({ context }) => context.ready + 1 === context.needed && context.started === context.needed, explain: () => '' },
} satisfies Record<string, GuardDef<PartitionContext, PartitionEvent>>;

const partitionUpdates = {
  requestResize: ({ event }) => {
    const e = event as PEv<'resize_begin'>;
    return { target: { prefill: e.prefill, decode: e.decode }, needed: e.liveWorkers, oldLive: e.liveWorkers, started: 0, ready: 0 };
  },
  countStarted: ({ context }) => ({ started: context.started + 1 }),
  countReady: ({ context }) => ({ ready: context.ready + 1 }),
  countStopped: ({ context }) => ({ oldLive: context.oldLive - 1 }),
  adoptSplit: ({ context }) => ({ epoch: context.epoch + 1, prefill: context.target!.prefill, decode: context.target!.decode, target: null, oldLive: context.needed }),
} satisfies Record<string, Update<PartitionContext, PartitionEvent>>;

export const partitionParts: MachineParts<PartitionContext, PartitionEvent> = {
  guards: partitionGuards,
  updates: partitionUpdates,
  unhandled: (state, c, e) => {
    if (e.type === 'resize_begin') return { protects: 'ResizeHandoff', message: `a resize to epoch ${c.epoch + 1} is in progress; one resize at a time` };
    if (state === 'stable') return { protects: 'ResizeHandoff', message: `is stable at epoch ${c.epoch}; '${e.type}' happens only during a resize` };
    if (state === 'initialising')
      return { protects: 'ResizeHandoff', message: `new workers are still initialising (${c.ready}/${c.needed} ready); old workers keep serving until all are ready (delayed switch)` };
    return { protects: 'ResizeHandoff', message: `is switching; '${e.type}' does not apply` };
  },
};

export const partitionMachine = setup({
  types: {
    context: {} as PartitionContext,
    events: {} as PartitionEvent,
    input: {} as { prefill: number; decode: number; rule: PartitionContext['rule']; workers: number },
  },
  guards: guardChecks(partitionGuards),
  actions: assignActions(partitionUpdates),
}).createMachine({
  id: 'partition',
  initial: 'stable',
  context: ({ input }) => ({
    epoch: 0,
    prefill: input.prefill,
    decode: input.decode,
    rule: input.rule,
    target: null,
    oldLive: input.workers,
    needed: 0,
    started: 0,
    ready: 0,
  }),
  states: {
    stable: {
      on: { resize_begin: { guard: and(['nextEpoch', 'shareRuleHolds']), target: 'initialising', actions: 'requestResize' } },
    },
    initialising: {
      on: {
        worker_start: { guard: and(['ofNextEpoch', 'roomForWorker', 'matchesTarget']), actions: 'countStarted' },
        worker_ready: [
          { guard: and(['isNewWorker', 'lastToBeReady']), target: 'switching', actions: 'countReady' },
          { guard: 'isNewWorker', actions: 'countReady' },
        ],
      },
    },
    switching: {
      on: {
        migrate: { guard: and(['oldToNew', 'sameRole']) },
        worker_stop: { guard: 'isOldWorker', actions: 'countStopped' },
        resize_end: { guard: and(['endsThisResize', 'oldAllStopped']), target: 'stable', actions: 'adoptSplit' },
      },
    },
  },
});
