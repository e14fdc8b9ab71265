// The request lifecycle: arrive → waiting → prefilling (in chunks) → prefilled → handed off to a decode
// worker → decoding → finished; retracted (preempted) back to waiting with every generated token kept;
// aborted from every live state. One machine per request; the system composition supplies the facts
// (worker role, blocks owned in the worker's pool, block size) in the events it sends.
import { and, setup } from 'xstate';
import { assignActions, guardChecks, type GuardDef, type MachineParts, type Narrow, type Unhandled, type Update } from './machine-kit.ts';

export interface RequestContext {
  prompt: number;
  /** Output limit; 0 when unknown. */
  maxTokens: number;
  /** Output tokens appended so far; they survive preemption. */
  generated: number;
  /** Positions whose K/V is in the cache. Zero again after a retraction. */
  computed: number;
  /** Blocks owned, per pool (GPU). */
  owned: readonly number[];
  /** Trace v3: state slots owned (a hybrid model's recurrent state). */
  slots: number;
  /** The worker serving the request (its queue, or its FIFO), or null. */
  server: string | null;
  /** Steps and transfers in flight that use the request's blocks. */
  inFlight: number;
  /** A step computed the whole sequence: its token must be appended next. */
  tokenOwed: boolean;
  /** Trace v3: accepted draft tokens still to append before the owed token (the correction or bonus). */
  extraOwed: number;
  /** Handed off across GPUs: the KV has not arrived at the decode side yet. */
  awaitingKv: boolean;
  /** Ended while a step or transfer used its blocks: the free waits for that op's completion signal. */
  deferredFree: boolean;
}

export type RequestEvent =
  | { type: 'schedule'; worker: string; role: string }
  | { type: 'alloc' | 'alloc_take'; pool: number; count: number }
  | { type: 'cache_hit'; pool: number; count: number; tokens: number; blockSize: number; keyed: number }
  | { type: 'fork' }
  | { type: 'step_begin'; worker: string; role: string; tokens: number; pool: number; blockSize: number; from: number | null; draft: number }
  | { type: 'step_end'; tokens: number; draft: number; accepted: number }
  | { type: 'token'; index: number }
  | { type: 'handoff'; from: string; to: string; toRole: string; crossGpu: boolean }
  | { type: 'join'; worker: string; role: string }
  | { type: 'transfer_begin'; to: string }
  | { type: 'transfer_end'; ok: boolean }
  | { type: 'preempt'; worker: string; anyPhase: boolean }
  | { type: 'free'; pool: number; count: number; remaining: number; serverPool: number; unneeded?: boolean }
  | { type: 'slot_alloc' }
  | { type: 'slot_free'; remaining: number }
  | { type: 'finish' }
  | { type: 'abort' }
  | { type: 'migrate'; from: string; to: string };

type Ev<T extends RequestEvent['type']> = Narrow<RequestEvent, T>;
type G = GuardDef<RequestContext, RequestEvent>;

const length = (c: RequestContext) => c.prompt + c.generated;

const guards = {
  prefillRole: {
    check: ({ event }) => (event as Ev<'schedule'>).role !== 'decode',
    protects: 'WorkersServeWhenReady',
    explain: (_, e) => `${(e as Ev<'schedule'>).worker} is a decode worker; prefill work goes to a prefill or unified worker`,
  },
  decodeRole: {
    check: ({ event }) => (event as Ev<'step_begin'>).role !== 'prefill',
    protects: 'WorkersServeWhenReady',
    explain: (_, e) => `${(e as Ev<'step_begin'>).worker} is a prefill worker; decode steps run on a decode or unified worker`,
  },
  unifiedRole: {
    check: ({ event }) => (event as Ev<'join'>).role === 'unified',
    protects: 'LifecycleOrder',
    explain: (_, e) => `a prefilled request joins decode at ${(e as Ev<'join'>).worker} only through a handoff (its FIFO), unless the worker is unified`,
  },
  servedBy: {
    check: ({ context, event }) => context.server === (event as Ev<'step_begin'>).worker,
    protects: 'SingleServer',
    explain: (c, e) => `served by ${c.server ?? 'no worker'}, not by ${(e as Ev<'step_begin'>).worker}`,
  },
  servedByFrom: {
    check: ({ context, event }) => context.server === (event as Ev<'handoff'>).from,
    protects: 'SingleServer',
    explain: (c, e) => `served by ${c.server ?? 'no worker'}, so ${(e as Ev<'handoff'>).from} cannot hand it over`,
  },
  notInFlight: {
    check: ({ context }) => context.inFlight === 0,
    protects: 'SingleWriter',
    explain: (c) => `${c.inFlight} step or transfer still in flight on its blocks`,
  },
  chunkFits: {
    check: ({ context, event }) => context.computed + (event as Ev<'step_begin'>).tokens - (event as Ev<'step_begin'>).draft <= length(context),
    protects: 'LifecycleOrder',
    explain: (c, e) => {
      const s = e as Ev<'step_begin'>;
      return `step computes ${s.tokens - s.draft} position(s)${s.draft ? ` besides its ${s.draft} draft(s)` : ''} but only ${length(c) - c.computed} of its ${length(c)} are not computed yet` + (c.tokenOwed ? ' (its last token was not appended)' : '');
    },
  },
  // Trace v3: the step says where it starts; it must be where the request's computed positions end.
  startsAtComputed: {
    check: ({ context, event }) => (event as Ev<'step_begin'>).from === null || (event as Ev<'step_begin'>).from === context.computed,
    protects: 'StepsInOrder',
    explain: (c, e) => {
      const from = (e as Ev<'step_begin'>).from!;
      return `step starts at position ${from}, but ${c.computed} position(s) are computed and accepted: ${from > c.computed ? `positions ${c.computed}..${from - 1} would be skipped (or hold rolled-back drafts)` : `positions ${from}..${c.computed - 1} would be computed again`}`;
    },
  },
  // Trace v3: draft positions extend the sequence's end: the item first computes every position up to the last token.
  draftsAtTail: {
    check: ({ context, event }) => {
      const s = event as Ev<'step_begin'>;
      return s.draft === 0 || context.computed + s.tokens - s.draft === length(context);
    },
    protects: 'DraftsAtTail',
    explain: (c, e) => {
      const s = e as Ev<'step_begin'>;
      return `step verifies ${s.draft} draft(s) after ${s.tokens - s.draft} position(s) from ${c.computed}, which do not reach the sequence's end (${length(c)} positions): drafts only follow the last token`;
    },
  },
  noDrafts: {
    check: ({ event }) => (event as Ev<'step_begin'>).draft === 0,
    protects: 'DraftsAtTail',
    explain: () => `a prefill step carries no drafts: drafts are verified by a decoding request`,
  },
  coversStep: {
    check: ({ context, event }) => {
      const e = event as Ev<'step_begin'>;
      return Math.ceil((context.computed + e.tokens) / e.blockSize) <= (context.owned[e.pool] ?? 0);
    },
    protects: 'SingleWriter',
    explain: (c, e) => {
      const s = e as Ev<'step_begin'>;
      return `step writes positions up to ${c.computed + s.tokens}, which need ${Math.ceil((c.computed + s.tokens) / s.blockSize)} block(s), but it owns ${c.owned[s.pool] ?? 0} in pool ${s.pool}`;
    },
  },
  beforeFirstStep: {
    check: ({ context }) => context.computed === 0 && context.inFlight === 0 && context.owned.every((n) => n === 0),
    protects: 'HitSkipsExactly',
    explain: (c) => `has ${c.computed} position(s) computed and ${c.owned.reduce((a, n) => a + n, 0)} block(s) already; a hit comes before its first step and its first block`,
  },
  hitWholeBlocks: {
    check: ({ event }) => {
      const e = event as Ev<'cache_hit'>;
      return e.tokens === e.count * e.blockSize;
    },
    protects: 'HitSkipsExactly',
    explain: (_, e) => {
      const h = e as Ev<'cache_hit'>;
      return `hit of ${h.count} block(s) of ${h.blockSize} positions claims ${h.tokens} position(s), not ${h.count * h.blockSize}`;
    },
  },
  hitLeavesLast: {
    check: ({ context, event }) => (event as Ev<'cache_hit'>).tokens <= length(context) - 1,
    protects: 'HitSkipsExactly',
    explain: (c, e) => `hit covers ${(e as Ev<'cache_hit'>).tokens} of its ${length(c)} position(s); the last position is always computed (it yields the next token)`,
  },
  hitKeyed: {
    check: ({ event }) => (event as Ev<'cache_hit'>).count <= (event as Ev<'cache_hit'>).keyed,
    protects: 'CacheCoherent',
    explain: (_, e) => `hit takes ${(e as Ev<'cache_hit'>).count} block(s), but the request has cache keys for ${(e as Ev<'cache_hit'>).keyed} (its arrive lists them): nothing says those blocks hold its prefix`,
  },
  tokenDue: {
    check: ({ context }) => context.tokenOwed,
    protects: 'TokensInOrder',
    explain: () => `no completed step produced a token to append`,
  },
  nextIndex: {
    check: ({ context, event }) => (event as Ev<'token'>).index === context.generated,
    protects: 'TokensInOrder',
    explain: (c, e) => `token index ${(e as Ev<'token'>).index}, but ${c.generated} token(s) were generated so the next index is ${c.generated}`,
  },
  underLimit: {
    check: ({ context }) => context.maxTokens === 0 || context.generated < context.maxTokens,
    protects: 'LifecycleOrder',
    explain: (c) => `already generated its limit of ${c.maxTokens} token(s)`,
  },
  noTokenOwed: {
    // A position computed past the output limit (a step scheduled before the last token was seen) yields no token.
    check: ({ context }) => !context.tokenOwed || (context.maxTokens > 0 && context.generated >= context.maxTokens),
    protects: 'TokensInOrder',
    explain: () => `a computed token was not appended first; it would be lost`,
  },
  toDecodeWorker: {
    check: ({ event }) => (event as Ev<'handoff'>).toRole === 'decode',
    protects: 'WorkersServeWhenReady',
    explain: (_, e) => `${(e as Ev<'handoff'>).to} is not a decode worker`,
  },
  awaitingKv: {
    check: ({ context }) => context.awaitingKv,
    protects: 'LifecycleOrder',
    explain: () => `its KV is already at the decode side; there is nothing to transfer`,
  },
  transferToServer: {
    check: ({ context, event }) => context.server === (event as Ev<'transfer_begin'>).to,
    protects: 'SingleWriter',
    explain: (c, e) => `transfer writes for ${(e as Ev<'transfer_begin'>).to}, but the request is served by ${c.server ?? 'no worker'}`,
  },
  kvArrived: {
    check: ({ context }) => !context.awaitingKv,
    protects: 'LifecycleOrder',
    explain: () => `its KV transfer has not completed`,
  },
  notDeferred: {
    check: ({ context }) => !context.deferredFree,
    protects: 'NoFreeWhileInFlight',
    explain: (c) => `ended while ${c.inFlight} step or transfer used its blocks; the free waits for its completion`,
  },
  keepsServingCopy: {
    // Another pool's copy (after a transfer), or (trace v3) blocks the composition found outside every window.
    check: ({ event }) => (event as Ev<'free'>).pool !== (event as Ev<'free'>).serverPool || (event as Ev<'free'>).unneeded === true,
    protects: 'KeepsLiveKv',
    explain: (_, e) => `it is live and pool ${(e as Ev<'free'>).pool} holds the KV its worker computes with`,
  },
  outOfWindow: {
    // Trace v3: blocks the composition found outside every window (a prefilled request's, awaiting its transfer).
    check: ({ event }) => (event as Ev<'free'>).unneeded === true,
    protects: 'KeepsLiveKv',
    explain: () => `it is live and waits for its KV transfer, which reads every block it holds`,
  },
  // Branch guards: they choose a transition and protect nothing themselves.
  releasesLast: { check: ({ event }) => (event as Ev<'free'>).remaining === 0, explain: () => '' },
  opInFlight: { check: ({ context }) => context.inFlight > 0, explain: () => '' },
  ownsNoBlocks: { check: ({ context }) => context.owned.every((n) => n === 0) && context.slots === 0, explain: () => '' },
  slotReleasesLast: { check: ({ event }) => (event as Ev<'slot_free'>).remaining === 0, explain: () => '' },
  // Variant switch (a preemption cascade, bug zoo Z4's liveness failure): the scheduler may also retract a
  // request that is still being prefilled.
  // Trace v3 allows it (vLLM v1 preempts a request mid-prefill like any other).
  preemptsPrefill: { check: ({ event }) => (event as Ev<'preempt'>).anyPhase, explain: () => '', variant: true },
  // Whether the decode side believes a KV transfer is still running when it aborts a queued request.
  transferPending: { check: ({ context }) => context.inFlight > 0, explain: () => '' },
  completesSequence: { check: ({ context, event }) => context.computed + (event as Ev<'step_end'>).tokens >= length(context), explain: () => '' },
} satisfies Record<string, G>;

type U = Update<RequestContext, RequestEvent>;

const addTo = (owned: readonly number[], pool: number, delta: number) => {
  const next = owned.slice();
  next[pool] = (next[pool] ?? 0) + delta;
  return next;
};

const updates = {
  setServer: ({ event }) => ({ server: (event as Ev<'schedule'>).worker }),
  addBlocks: ({ context, event }) => ({ owned: addTo(context.owned, (event as Ev<'alloc'>).pool, (event as Ev<'alloc'>).count) }),
  takeHit: ({ context, event }) => ({ owned: addTo(context.owned, (event as Ev<'cache_hit'>).pool, (event as Ev<'cache_hit'>).count), computed: (event as Ev<'cache_hit'>).tokens }),
  releaseBlocks: ({ context, event }) => ({ owned: addTo(context.owned, (event as Ev<'free'>).pool, -(event as Ev<'free'>).count) }),
  takeSlot: ({ context }) => ({ slots: context.slots + 1 }),
  releaseSlot: ({ context }) => ({ slots: context.slots - 1 }),
  beginStep: ({ context }) => ({ inFlight: context.inFlight + 1 }),
  endStep: ({ context, event }) => {
    const e = event as Ev<'step_end'>;
    // A verify keeps its accepted drafts and rolls back the rest; it owes the accepted tokens, then one more.
    const computed = context.computed + e.tokens - (e.draft - e.accepted);
    return { inFlight: context.inFlight - 1, computed, tokenOwed: computed >= length(context), extraOwed: e.draft > 0 ? e.accepted : 0 };
  },
  // The completion signal of an op in flight when the request ended: the deferred free may happen now.
  endStepDiscarded: ({ context }) => ({ inFlight: context.inFlight - 1, deferredFree: context.deferredFree && context.inFlight > 1 }),
  deferFree: () => ({ deferredFree: true }),
  appendToken: ({ context }) => (context.extraOwed > 0 ? { generated: context.generated + 1, extraOwed: context.extraOwed - 1 } : { generated: context.generated + 1, tokenOwed: false }),
  // Across GPUs the KV must still be transferred before the decode worker can use it.
  handOver: ({ event }) => ({ server: (event as Ev<'handoff'>).to, awaitingKv: (event as Ev<'handoff'>).crossGpu }),
  beginTransfer: ({ context }) => ({ inFlight: context.inFlight + 1 }),
  endTransfer: ({ context, event }) => ({
    inFlight: context.inFlight - 1,
    awaitingKv: context.awaitingKv && !(event as Ev<'transfer_end'>).ok,
    deferredFree: context.deferredFree && context.inFlight > 1,
  }),
  moveServer: ({ event }) => ({ server: (event as Ev<'migrate'>).to }),
  retract: () => ({ server: null, computed: 0, tokenOwed: false, extraOwed: 0 }),
  leaveServer: () => ({ server: null, tokenOwed: false, extraOwed: 0 }),
} satisfies Record<string, U>;

const unhandled: Unhandled<RequestContext, RequestEvent> = (state, _c, event) => {
  if (state === 'finished' || state === 'aborted') {
    if (event.type === 'finish' || event.type === 'abort') return { protects: 'EndsOnce', message: `already ${state}; it cannot end twice` };
    return { protects: 'LifecycleOrder', message: `is ${state}; '${event.type}' is not allowed after the end` };
  }
  if (event.type === 'free') return { protects: 'KeepsLiveKv', message: `is ${state}; a live request's blocks are freed only after it ends or is preempted` };
  if (event.type === 'slot_free') return { protects: 'KeepsLiveKv', message: `is ${state}; a live request's state slot holds its recurrent state and is given back only after it ends or is preempted` };
  if (event.type === 'preempt')
    return { protects: 'LifecycleOrder', message: `is ${state}; only a decoding request (or, in trace v3, a prefilling one) can be preempted (never one on the prefill FIFO)` };
  return { protects: 'LifecycleOrder', message: `is ${state}; '${event.type}' is not allowed there` };
};

export const requestParts: MachineParts<RequestContext, RequestEvent> = { guards, updates, unhandled };

const migrate = { migrate: { guard: and(['servedByFrom', 'notInFlight']), actions: 'moveServer' } } as const;
const abort = {
  abort: [
    { guard: 'opInFlight', target: 'aborted', actions: ['leaveServer', 'deferFree'] },
    { target: 'aborted', actions: 'leaveServer' },
  ],
} as const;
const alloc = { alloc: { actions: 'addBlocks' }, alloc_take: { actions: 'addBlocks' }, slot_alloc: { actions: 'takeSlot' } } as const;
/** An ended request releases its blocks, after the completion of any op that still uses them. */
const ended = {
  free: { guard: 'notDeferred', actions: 'releaseBlocks' },
  slot_free: { guard: 'notDeferred', actions: 'releaseSlot' },
  step_end: { actions: 'endStepDiscarded' },
  transfer_end: { actions: 'endTransfer' },
} as const;
const appendToken = { token: { guard: and(['tokenDue', 'nextIndex', 'underLimit']), actions: 'appendToken' } } as const;
const freeOldCopy = { free: { guard: 'keepsServingCopy', actions: 'releaseBlocks' } } as const;

export const requestMachine = setup({
  types: { context: {} as RequestContext, events: {} as RequestEvent, input: {} as { prompt: number; maxTokens: number; pools: number } },
  guards: guardChecks(guards),
  actions: assignActions(updates),
}).createMachine({
  id: 'request',
  initial: 'waiting',
  context: ({ input }) => ({
    prompt: input.prompt,
    maxTokens: input.maxTokens,
    generated: 0,
    computed: 0,
    owned: new Array(input.pools).fill(0),
    slots: 0,
    server: null,
    inFlight: 0,
    tokenOwed: false,
    extraOwed: 0,
    awaitingKv: false,
    deferredFree: false,
  }),
  states: {
    waiting: {
      on: {
        ...alloc, // semi-PD code mode: the decode worker allocates before queueing the prefill batch
        schedule: { guard: 'prefillRole', target: 'prefilling', actions: 'setServer' },
        ...abort,
      },
    },
    prefilling: {
      on: {
        ...alloc,
        // Trace v2: a prefix-cache hit, before the first step, skips the positions its blocks hold.
        cache_hit: { guard: and(['beforeFirstStep', 'hitKeyed', 'hitWholeBlocks', 'hitLeavesLast']), actions: 'takeHit' },
        step_begin: { guard: and(['servedBy', 'prefillRole', 'notInFlight', 'startsAtComputed', 'noDrafts', 'chunkFits', 'coversStep']), actions: 'beginStep' },
        step_end: [{ guard: 'completesSequence', target: 'prefilled', actions: 'endStep' }, { actions: 'endStep' }],
        ...freeOldCopy, // trace v3: a sliding-window group's blocks behind the window, during a chunked prefill
        preempt: [
          { guard: and(['preemptsPrefill', 'servedBy', 'ownsNoBlocks']), target: 'waiting', actions: 'retract' },
          { guard: and(['preemptsPrefill', 'servedBy']), target: 'retracting', actions: 'retract' },
        ],
        ...migrate,
        ...abort,
      },
    },
    prefilled: {
      on: {
        ...alloc, // disaggregated: the decode side pre-allocates before the KV transfer
        ...appendToken, // unified and disaggregated engines append the first token here
        free: { guard: 'outOfWindow', actions: 'releaseBlocks' }, // trace v3: a window's blocks, before the transfer
        handoff: { guard: and(['servedByFrom', 'notInFlight', 'toDecodeWorker']), target: 'handedOff', actions: 'handOver' },
        join: { guard: and(['servedBy', 'unifiedRole', 'noTokenOwed']), target: 'decoding' },
        finish: { guard: 'noTokenOwed', target: 'finished', actions: 'leaveServer' },
        ...migrate,
        ...abort,
      },
    },
    handedOff: {
      on: {
        ...alloc,
        ...appendToken, // semi-PD: the decode worker appends the first token when it pops the FIFO
        transfer_begin: { guard: and(['awaitingKv', 'transferToServer', 'notInFlight']), actions: 'beginTransfer' },
        transfer_end: { actions: 'endTransfer' },
        ...freeOldCopy,
        join: { guard: and(['servedBy', 'kvArrived', 'notInFlight', 'noTokenOwed']), target: 'decoding' },
        finish: { guard: 'noTokenOwed', target: 'finished', actions: 'leaveServer' }, // a one-token output ends at the decode side
        ...migrate,
        abort: [
          { guard: 'transferPending', target: 'aborted', actions: ['leaveServer', 'deferFree'] },
          { target: 'aborted', actions: 'leaveServer' },
        ],
      },
    },
    decoding: {
      on: {
        ...alloc, // one block more every blockSize tokens
        step_begin: { guard: and(['servedBy', 'decodeRole', 'notInFlight', 'startsAtComputed', 'draftsAtTail', 'chunkFits', 'coversStep']), actions: 'beginStep' },
        step_end: { actions: 'endStep' },
        ...appendToken,
        ...freeOldCopy,
        preempt: { guard: and(['servedBy', 'noTokenOwed']), target: 'retracting', actions: 'retract' },
        // Trace v2: the child is made by the composition, in this state, with this context.
        fork: { guard: and(['notInFlight', 'noTokenOwed']) },
        finish: [
          { guard: and(['noTokenOwed', 'opInFlight']), target: 'finished', actions: ['leaveServer', 'deferFree'] },
          { guard: 'noTokenOwed', target: 'finished', actions: 'leaveServer' },
        ],
        ...migrate,
        ...abort,
      },
    },
    retracting: {
      on: {
        free: [{ guard: 'releasesLast', target: 'waiting', actions: 'releaseBlocks' }, { actions: 'releaseBlocks' }],
        slot_free: [{ guard: 'slotReleasesLast', target: 'waiting', actions: 'releaseSlot' }, { actions: 'releaseSlot' }],
        step_end: { actions: 'endStepDiscarded' },
        ...abort,
      },
    },
    finished: { on: ended },
    aborted: { on: ended },
  },
});

/** Lifecycle states in which a request is live (admitted and not ended). */
export const LIVE_REQUEST_STATES = new Set(['waiting', 'prefilling', 'prefilled', 'handedOff', 'decoding', 'retracting']);
