// Spec variants: the reference machines with one guard changed, each reintroducing the mechanism of a bug
// from the bug zoo. The explorer must refute each at the default bound while the reference spec verifies
// clean. A variant is built the way XState swaps implementations — `machine.provide({ guards })` — and the
// compiled transition function is derived from the provided machine.
//
// The shared-KV variants (trace v2) are explored at the sharing bound and judged: the variant runs as the
// engine, and every event it takes is checked by the reference spec as `pdspec conform` checks a trace
// (explorer.ts). Their bugs break rules that only a guard can see (a write to a shared block, an eviction
// under a lock, the cache's counters) or that show only when a later event meets the damage (a reference
// count that was ignored), so the counterexample is the first event the reference refuses. The trace-v3
// variants are explored at the v3 bound and judged the same way: an engine that forgets a verify's rollback,
// appends tokens its verify rejected, frees a position its window still reads, or applies the window to the
// full-attention layers.
import { setup } from 'xstate';
import { bufferMachine, bufferParts } from '../../spec/cad.ts';
import { blockMachine, blockParts } from '../../spec/kv.ts';
import { assignActions, compileMachine, guardChecks, type GuardDef, type MachineParts, type Update } from '../../spec/machine-kit.ts';
import { workerMachine, workerParts } from '../../spec/partition.ts';
import { requestMachine, requestParts, type RequestContext, type RequestEvent } from '../../spec/request.ts';
import type { MachineName, SystemOptions } from '../../spec/system.ts';
import type { TraceHeader } from '../../spec/trace-format.ts';
import { CAD_CONFIG, DEFAULT_CONFIG, SHARING_CONFIG, V3_CONFIG, type ExploreConfig } from './config.ts';
import type { AnyStateMachine } from 'xstate';

export interface Variant {
  name: string;
  /** The bug zoo row (docs/bug-zoo.md) whose mechanism it is, or '—' for a slip no row records. */
  zoo: string;
  says: string;
  /** The rule a counterexample of this variant breaks (and `pdspec conform` names on its trace). */
  expect: string;
  system: SystemOptions;
  /** Extra proposals the variant's engine makes (e.g. a release list with a block twice). */
  duplicateRelease?: true;
  /** Preemptions are not counted: the scheduler may retract again and again. */
  unboundedPreemption?: true;
  /** Trace v2: explored at the sharing bound (SHARING_CONFIG), with these changes. */
  sharing?: Partial<ExploreConfig>;
  /** The variant runs as the engine and the reference spec judges each event it takes (as `conform` would). */
  judged?: true;
  /** Extra proposals the variant's engine makes: hits on cached blocks whatever their key. */
  hitsAnyKey?: true;
  /** Trace v3: explored at the v3 bound (V3_CONFIG), with these changes. */
  v3?: Partial<ExploreConfig>;
  /** Trace v4: explored at the core-attention bound (CAD_CONFIG), with these changes. */
  cad?: Partial<ExploreConfig>;
  /** The header as the variant's engine reads it (the reference and the counterexample keep the explored one). */
  header?: (h: TraceHeader) => TraceHeader;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
function withGuards(machine: AnyStateMachine, parts: MachineParts<any, any>, checks: Record<string, GuardDef<any, any>['check']>) {
  const guards = { ...parts.guards };
  for (const [name, check] of Object.entries(checks)) {
    if (!guards[name]) throw new Error(`variant overrides unknown guard '${name}'`);
    guards[name] = { ...guards[name], check };
  }
  return compileMachine(machine.provide({ guards: checks as never }), { ...parts, guards });
}

/** The machine with some context updates (actions) replaced, as XState's `provide({ actions })` replaces them. */
function withUpdates(machine: AnyStateMachine, parts: MachineParts<any, any>, changed: Record<string, Update<any, any>>, checks: Record<string, GuardDef<any, any>['check']> = {}) {
  const updates = { ...parts.updates };
  for (const [name, u] of Object.entries(changed)) {
    if (!updates[name]) throw new Error(`variant overrides unknown update '${name}'`);
    updates[name] = u;
  }
  const guards = { ...parts.guards };
  for (const [name, check] of Object.entries(checks)) {
    if (!guards[name]) throw new Error(`variant overrides unknown guard '${name}'`);
    guards[name] = { ...guards[name], check };
  }
  return compileMachine(machine.provide({ actions: assignActions(changed), guards: checks as never }), { ...parts, guards, updates });
}

type RequestUpdate = Update<RequestContext, RequestEvent>;
type StepEnd = Extract<RequestEvent, { type: 'step_end' }>;

function machines(m: Partial<Record<MachineName, ReturnType<typeof compileMachine>>>) {
  return m as SystemOptions['machines'];
}

/**
 * The attention server's buffer with one transition more: a dispatch into a buffer whose result has not been
 * read (a ping-pong pair that flips before the worker read the last nano-batch's output).
 */
function bufferReusedBeforeRead() {
  const config = bufferMachine.config as any;
  const machine = setup({ guards: guardChecks(bufferParts.guards) as any, actions: assignActions(bufferParts.updates) }).createMachine({
    ...config,
    states: { ...config.states, holdingResult: { on: { ...config.states.holdingResult.on, task_dispatch: { target: 'holdingInputs', actions: 'load' } } } },
  });
  return compileMachine(machine as AnyStateMachine, bufferParts as MachineParts<any, any>);
}

export const VARIANTS: Record<string, Variant> = {
  'lockless-allocator': {
    name: 'lockless-allocator',
    zoo: 'Z13',
    says: 'prefill and decode allocate from the shared pool without the lock',
    expect: 'SingleOwner',
    system: { locking: false },
  },
  'switch-drops-fifo': {
    name: 'switch-drops-fifo',
    zoo: 'Z15',
    says: 'the asynchronous switch stops an old worker once its running requests are handed over, forgetting its FIFO',
    expect: 'ServedByLiveWorker',
    system: {
      machines: machines({ worker: withGuards(workerMachine, workerParts, { handedOver: ({ context }: any) => context.load - context.fifo.length === 0 }) }),
    },
  },
  'free-on-output': {
    name: 'free-on-output',
    zoo: 'Z3',
    says: "a finished request's blocks are freed when its output arrives, while its next step may still be in flight",
    expect: 'NoFreeWhileInFlight',
    system: {
      machines: machines({
        block: withGuards(blockMachine, blockParts, { notHeld: () => true }),
        request: withGuards(requestMachine, requestParts, { notDeferred: () => true }),
      }),
    },
  },
  'lost-completion-signal': {
    name: 'lost-completion-signal',
    zoo: 'Z6',
    says: 'aborting a handed-off request defers its free to a completion signal, even when that signal already came',
    expect: 'EndedRequestsRelease',
    system: { machines: machines({ request: withGuards(requestMachine, requestParts, { transferPending: () => true }) }) },
  },
  'duplicate-release': {
    name: 'duplicate-release',
    zoo: 'Z12',
    says: 'a release list names a block twice and the free list takes it twice',
    expect: 'FreeListUnique',
    system: { machines: machines({ block: withGuards(blockMachine, blockParts, { releasesTwice: () => true }) }) },
    duplicateRelease: true,
  },
  'preemption-cascade': {
    name: 'preemption-cascade',
    zoo: 'Z4',
    says: 'the scheduler retracts again and again, even requests still being prefilled, so that some never finish',
    expect: 'starvation',
    system: { machines: machines({ request: withGuards(requestMachine, requestParts, { preemptsPrefill: () => true }) }) },
    unboundedPreemption: true,
  },
  // --- trace v2, shared KV
  'hit-ignores-key': {
    name: 'hit-ignores-key',
    zoo: 'Z2',
    says: 'a prefix-cache hit takes a cached block without comparing its key with the one the request expects there',
    expect: 'CacheCoherent',
    system: { machines: machines({ block: withGuards(blockMachine, blockParts, { keyMatches: () => true }) }) },
    // Two prefixes: a hit can only be wrong where some cached block is not the request's.
    sharing: { prefixes: ['a', 'b'], forks: 0 },
    judged: true,
    hitsAnyKey: true,
  },
  'refcount-ignored': {
    name: 'refcount-ignored',
    zoo: 'Z1',
    says: "a request's free returns a block to the free list (cached, so evictable) even when other requests still hold it",
    // The engine's own counters then call a held block evictable: the first thing the reference sees.
    expect: 'CacheSizeAccounted',
    system: { machines: machines({ block: withGuards(blockMachine, blockParts, { heldByOthers: () => false, lastUncached: ({ context }: any) => context.key === null }) }) },
    sharing: { forks: 0 },
    judged: true,
  },
  'evict-locked': {
    name: 'evict-locked',
    zoo: 'Z16',
    says: 'the radix cache evicts a node whose pages a request still reads under its lock',
    expect: 'NoEvictWhileLocked',
    system: { machines: machines({ block: withGuards(blockMachine, blockParts, { unlocked: () => true }) }) },
    // A pool of three blocks: the second request's allocation is short as soon as the first holds two.
    sharing: { prefixCache: 'radix', forks: 0, blocks: 3 },
    judged: true,
  },
  'write-shared': {
    name: 'write-shared',
    zoo: 'Z1',
    says: "a forked request's step writes the last block it shares with its parent in place, without copying it first",
    expect: 'WritesUnshared',
    system: { copyOnWrite: false },
    sharing: {},
    judged: true,
  },
  // --- trace v3: speculative decoding, layer groups and windows
  'rollback-ignored': {
    name: 'rollback-ignored',
    zoo: 'Z19',
    says: "a verify's end counts every position it wrote as computed, the rejected drafts' too, so the request's next step starts after them",
    expect: 'StepsInOrder',
    system: {
      machines: machines({
        request: withUpdates(
          requestMachine,
          requestParts,
          {
            endStep: (({ context, event }) => {
              const e = event as StepEnd;
              const computed = context.computed + e.tokens;
              return { inFlight: context.inFlight - 1, computed, tokenOwed: computed >= context.prompt + context.generated, extraOwed: e.draft > 0 ? e.accepted : 0 };
            }) as RequestUpdate,
          },
          // Its own bookkeeping believes the rejected positions computed, so it never finds its step too long.
          { chunkFits: () => true },
        ),
      }),
    },
    // A unified engine, one layer group, blocks of 4 and a prompt of 1: the verify and the step after it need no
    // allocation more, and no handoff comes between.
    v3: { mode: 'unified', window: 0, blockSize: 4, prompt: 1, chunk: 1, output: 3 },
    judged: true,
  },
  'appends-rejected': {
    name: 'appends-rejected',
    zoo: '—',
    says: "after a verify the engine appends every draft and one token more, whatever the target model accepted",
    expect: 'TokensInOrder',
    system: {
      machines: machines({
        request: withUpdates(requestMachine, requestParts, {
          endStep: (({ context, event }) => {
            const e = event as StepEnd;
            const computed = context.computed + e.tokens - (e.draft - e.accepted);
            return { inFlight: context.inFlight - 1, computed, tokenOwed: computed >= context.prompt + context.generated, extraOwed: e.draft };
          }) as RequestUpdate,
        }),
      }),
    },
    // As rollback-ignored's; an output of 3 leaves room under the limit for the token too many.
    v3: { mode: 'unified', window: 0, blockSize: 4, prompt: 1, chunk: 1, output: 3 },
    judged: true,
  },
  'window-off-by-one': {
    name: 'window-off-by-one',
    zoo: '—',
    says: "the sliding-window group's free forgets that the window counts the query position: it drops the oldest position the next step still reads",
    expect: 'PartialFreeOnlyUnneeded',
    system: {},
    // The engine's window is one position short of the header's (W − 1: a position p reads p − W + 2 .. p).
    header: (h) => ({ ...h, groups: h.groups?.map((g) => (g.window === undefined ? g : { ...g, window: g.window - 1 })) }),
    v3: {},
    judged: true,
  },
  'window-on-full-attention': {
    name: 'window-on-full-attention',
    zoo: 'Z20',
    says: "the sliding window is applied to the full-attention group too: a live request frees blocks every global layer still reads",
    expect: 'PartialFreeOnlyUnneeded',
    system: {},
    // The engine reads every group as windowed, with the sliding window's size.
    header: (h) => {
      const window = h.groups?.find((g) => g.window !== undefined)?.window;
      return { ...h, groups: h.groups?.map((g) => ({ ...g, window: g.window ?? window })) };
    },
    // A window of 1: the first prefill chunk already puts the oldest block out of it.
    v3: { window: 1 },
    judged: true,
  },
  'ping-pong-overwrite': {
    name: 'ping-pong-overwrite',
    zoo: '—',
    says: "an attention server's buffer takes the next nano-batch's task while the last one's result is still unread: the output is overwritten before the worker reads it",
    expect: 'BufferNotReused',
    system: { machines: machines({ buffer: bufferReusedBeforeRead() }) },
    // One server of one buffer: the second shard's only place is the first one's buffer.
    cad: { requests: 1, output: 1, cadServers: 1, cadBuffers: 1, serverLosses: 0 },
    judged: true,
  },
  'in-place-clobbers-shared-input': {
    name: 'in-place-clobbers-shared-input',
    zoo: '—',
    says: "a task's in-place output overwrites its inputs while another shard, batched to read that shard's K/V from its buffer, has not finished",
    expect: 'InPlaceKeepsInputs',
    system: { cadChecks: { inPlace: false } },
    cad: { requests: 1, output: 1, cadServers: 1, cadBuffers: 2, serverLosses: 0 },
    judged: true,
  },
  'step-skips-results': {
    name: 'step-skips-results',
    zoo: '—',
    says: "a step ends without waiting for its attention tasks' results (as an engine that forgets the task a lost server took with it)",
    expect: 'StepWaitsForTasks',
    system: { cadChecks: { stepWaits: false } },
    cad: { requests: 1, output: 1, cadServers: 2, cadBuffers: 1, serverLosses: 1 },
    judged: true,
  },
};

/** The variants that are refuted with a safety counterexample (the bug zoo rows of the explorer). */
export const SAFETY_VARIANTS = ['lockless-allocator', 'switch-drops-fifo', 'free-on-output', 'lost-completion-signal', 'duplicate-release'];

/** The shared-KV variants (trace v2), refuted at the sharing bound. */
export const SHARING_VARIANTS = ['hit-ignores-key', 'refcount-ignored', 'evict-locked', 'write-shared'];

/** The trace-v3 variants, refuted at the v3 bound (judged by the reference spec). */
export const V3_VARIANTS = ['rollback-ignored', 'appends-rejected', 'window-off-by-one', 'window-on-full-attention'];

/** The core-attention variants (trace v4), refuted at the CAD bound (judged by the reference spec). */
export const CAD_VARIANTS = ['ping-pong-overwrite', 'in-place-clobbers-shared-input', 'step-skips-results'];

/** The bound a variant is explored at by default: the v1 default, or the sharing or v3 bound with the variant's changes. */
export function defaultConfigFor(variant: string | null): ExploreConfig {
  const v = variant === null ? null : VARIANTS[variant];
  if (v?.sharing) return { ...SHARING_CONFIG, ...v.sharing, variant };
  if (v?.v3) return { ...V3_CONFIG, ...v.v3, variant };
  if (v?.cad) return { ...CAD_CONFIG, ...v.cad, variant };
  return { ...DEFAULT_CONFIG, variant };
}
