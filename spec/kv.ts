// KV block ownership and the unified memory manager's allocation protocol.
//
// block     — one per KV block: free (on the free list) or owned by a request. While owned, the worker that
//             may write it is the one serving its owner; steps and transfers in flight hold it (the system
//             counts the holds, so that a free can be refused while they last). Trace v2 shares blocks: a
//             block entered in the prefix cache has a key, other requests take references on it by a hit
//             (its owners are its holders, their number its reference count), and when its last holder
//             frees it, it waits on the free list still keyed (`cached`) until a hit revives it or an
//             eviction drops the key (vLLM v1's BlockPool; SGLang's radix tree reads the same way).
// pool      — one per GPU: the memory manager's lock and its utilisation version.
// allocator — one per worker: semi-PD's "query utilisation → take blocks → update utilisation", under the
//             pool lock. Taking the lock and reading utilisation is one step; so is writing utilisation back
//             and releasing the lock. Without the lock, two workers can read the same utilisation and take
//             the same blocks (bug zoo Z13). `alloc` is the same protocol done in one event.
import { and, setup } from 'xstate';
import { assignActions, guardChecks, type GuardDef, type MachineParts, type Update } from './machine-kit.ts';

// ---------------------------------------------------------------------------------------------
// block

export interface BlockContext {
  /** Owners (v2: its holders, whose number is its reference count); more than one in v1 only in a state that breaks SingleOwner. */
  owners: readonly string[];
  /** v2: its prefix-cache key, or null when it is not cached. */
  key: string | null;
  /** Times the block sits on the free list; more than one only in a state that breaks FreeListUnique. */
  inFreeList: number;
  /** Whether the allocation that took it has updated utilisation, and at which pool version. */
  committed: boolean;
  committedAt: number;
}

export type BlockEvent =
  | { type: 'alloc'; req: string; version: number }
  | { type: 'alloc_take'; req: string; seen: number; mine: boolean }
  | { type: 'alloc_commit'; version: number }
  | { type: 'free'; req: string; held: number; holders: string }
  | { type: 'hit'; req: string; key: string | null }
  | { type: 'insert'; req: string; key: string }
  | { type: 'evict'; key: string | null; radix: boolean }
  | { type: 'fork'; req: string }
  | { type: 'cow_from'; req: string };

type BEv<T extends BlockEvent['type']> = Extract<BlockEvent, { type: T }>;

const blockGuards = {
  unusedWhenQueried: {
    // Utilisation read at version `seen` counted the block as free if it was not taken, or taken by another
    // worker's allocation that had not written utilisation back by then.
    check: ({ context, event }) => {
      const e = event as BEv<'alloc_take'>;
      return !e.mine && (!context.committed || context.committedAt > e.seen);
    },
    protects: 'SingleOwner',
    explain: (c, e) =>
      (e as BEv<'alloc_take'>).mine ? `already taken by this allocation (for ${c.owners.join(', ')})` : `owned by ${c.owners.join(', ')} and already counted as used when utilisation was read`,
  },
  ownedByReq: {
    check: ({ context, event }) => context.owners.includes((event as BEv<'free'>).req),
    protects: 'SingleOwner',
    explain: (c, e) => `owned by ${c.owners.join(', ')}, not by ${(e as BEv<'free'>).req}`,
  },
  // Variant switch (bug zoo Z12): a release of a block already on the free list queues it again.
  releasesTwice: { check: () => false, explain: () => '', variant: true },
  notHeld: {
    check: ({ event }) => (event as BEv<'free'>).held === 0,
    protects: 'NoFreeWhileInFlight',
    explain: (_, e) => `still used by ${(e as BEv<'free'>).holders}, in flight`,
  },
  // Routing, not refusal: a free by one of several holders only drops its reference.
  heldByOthers: { check: ({ context }) => context.owners.length > 1, explain: () => '' },
  sharedWithOthers: {
    check: ({ context }) => context.owners.length > 1,
    protects: 'BlocksAccounted',
    explain: (c) => `is held by ${c.owners.join(', ')} alone: moving its only reference to a copy would leave it with no holder and off the free list`,
  },
  lastUncached: { check: ({ context }) => context.owners.length <= 1 && context.key === null, explain: () => '' },
  keyed: { check: ({ context }) => context.key !== null, explain: () => '' },
  isCached: {
    check: ({ context }) => context.key !== null,
    protects: 'CacheCoherent',
    explain: (c) => `is held by ${c.owners.join(', ')} but cached under no key: nothing says it holds the contents a hit or an eviction names`,
  },
  keyMatches: {
    // The key the requester expects at this position is the key the block's contents were cached under.
    check: ({ context, event }) => (event as BEv<'hit'>).key === null || (event as BEv<'hit'>).key === context.key,
    protects: 'CacheCoherent',
    explain: (c, e) => `is cached under key ${c.key}, but ${(e as BEv<'hit'>).req} expects key ${(e as BEv<'hit'>).key} at that position: serving it would hand over another prefix's KV`,
  },
  notHolding: {
    check: ({ context, event }) => !context.owners.includes((event as BEv<'hit'>).req),
    protects: 'RefCountIsHolders',
    explain: (_, e) => `is already held by ${(e as BEv<'hit'>).req}; a second reference by the same request would never be released`,
  },
  heldByInserter: {
    check: ({ context, event }) => context.owners.includes((event as BEv<'insert'>).req),
    protects: 'CacheCoherent',
    explain: (c, e) => `is held by ${c.owners.join(', ')}, not by ${(e as BEv<'insert'>).req}, whose content the key would describe`,
  },
  uncached: {
    check: ({ context }) => context.key === null,
    protects: 'CacheCoherent',
    explain: (c) => `is already cached under key ${c.key}; a second key would leave two entries for one block`,
  },
  unlocked: {
    // A radix tree's eviction frees the node's pages; only vLLM's hash cache can uncache a block in use.
    check: ({ event }) => !(event as BEv<'evict'>).radix,
    protects: 'NoEvictWhileLocked',
    explain: (c) => `is read by ${c.owners.join(', ')} under its lock; evicting it from a radix cache frees pages a live request still reads`,
  },
  evictsItsKey: {
    check: ({ context, event }) => (event as BEv<'evict'>).key === null || (event as BEv<'evict'>).key === context.key,
    protects: 'CacheCoherent',
    explain: (c, e) => `is cached under key ${c.key}, not ${(e as BEv<'evict'>).key}`,
  },
} satisfies Record<string, GuardDef<BlockContext, BlockEvent>>;

const blockUpdates = {
  take: ({ event }) => ({ owners: [(event as BEv<'alloc'>).req], inFreeList: 0, committed: true, committedAt: (event as BEv<'alloc'>).version }),
  takeUncommitted: ({ event }) => ({ owners: [(event as BEv<'alloc_take'>).req], inFreeList: 0, committed: false }),
  addOwner: ({ context, event }) => ({ owners: [...context.owners, (event as BEv<'alloc_take'>).req] }),
  commit: ({ event }) => ({ committed: true, committedAt: (event as BEv<'alloc_commit'>).version }),
  release: ({ context, event }) => ({
    owners: context.owners.filter((o) => o !== (event as BEv<'free'>).req),
    inFreeList: context.inFreeList + 1,
    committed: false,
  }),
  dropHolder: ({ context, event }) => ({ owners: context.owners.filter((o) => o !== (event as BEv<'free'>).req) }),
  revive: ({ event }) => ({ owners: [(event as BEv<'hit'>).req], inFreeList: 0 }),
  addHolder: ({ context, event }) => ({ owners: [...context.owners, (event as BEv<'hit'>).req] }),
  setKey: ({ event }) => ({ key: (event as BEv<'insert'>).key }),
  dropKey: () => ({ key: null }),
} satisfies Record<string, Update<BlockContext, BlockEvent>>;

export const blockParts: MachineParts<BlockContext, BlockEvent> = {
  guards: blockGuards,
  updates: blockUpdates,
  unhandled: (state, c, event) => {
    if (state === 'free' && event.type === 'free') return { protects: 'FreeListUnique', message: `is already on the free list; freeing it again would hand it out twice` };
    if (state === 'cached' && event.type === 'free') return { protects: 'FreeListUnique', message: `is already on the free list (cached under key ${c.key}); freeing it again would hand it out twice` };
    if (state === 'cached' && (event.type === 'alloc' || event.type === 'alloc_take'))
      return { protects: 'CacheCoherent', message: `is cached under key ${c.key}; handing it out without evicting it first leaves the key mapped to a block that will hold other contents (a stale cache entry, bug zoo Z2)` };
    if (state === 'free' && event.type === 'hit') return { protects: 'CacheCoherent', message: `is free and cached under no key: a hit on it would serve contents nobody cached` };
    if (state === 'free' && event.type === 'evict') return { protects: 'CacheCoherent', message: `is not cached; there is no key to evict` };
    if (event.type === 'insert') return { protects: 'CacheCoherent', message: `is ${state}; only a block its request holds can be cached` };
    if (state === 'owned' && event.type === 'alloc') return { protects: 'SingleOwner', message: `is owned by ${c.owners.join(', ')}; it cannot be allocated again` };
    return { protects: 'LifecycleOrder', message: `is ${state}; '${event.type}' does not apply` };
  },
};

export const blockMachine = setup({
  types: { context: {} as BlockContext, events: {} as BlockEvent },
  guards: guardChecks(blockGuards),
  actions: assignActions(blockUpdates),
}).createMachine({
  id: 'block',
  initial: 'free',
  context: { owners: [], key: null, inFreeList: 1, committed: false, committedAt: 0 },
  states: {
    free: {
      on: {
        alloc: { target: 'owned', actions: 'take' },
        alloc_take: { target: 'owned', actions: 'takeUncommitted' },
        free: { guard: 'releasesTwice', actions: 'release' },
      },
    },
    owned: {
      on: {
        alloc_take: { guard: 'unusedWhenQueried', actions: 'addOwner' },
        alloc_commit: { actions: 'commit' },
        // v1's one path first (it is the hot one): the last holder of an uncached block frees it.
        free: [
          { guard: and(['ownedByReq', 'notHeld', 'lastUncached']), target: 'free', actions: 'release' },
          { guard: and(['ownedByReq', 'heldByOthers']), actions: 'dropHolder' },
          { guard: and(['ownedByReq', 'notHeld', 'keyed']), target: 'cached', actions: 'release' },
        ],
        hit: { guard: and(['isCached', 'keyMatches', 'notHolding']), actions: 'addHolder' },
        insert: { guard: and(['heldByInserter', 'uncached']), actions: 'setKey' },
        evict: { guard: and(['isCached', 'evictsItsKey', 'unlocked']), actions: 'dropKey' },
        fork: { guard: 'notHolding', actions: 'addHolder' },
        cow_from: { guard: and(['ownedByReq', 'sharedWithOthers']), actions: 'dropHolder' },
      },
    },
    // v2: on the free list, keyed: a hit revives it, an eviction makes it plainly free.
    cached: {
      on: {
        hit: { guard: 'keyMatches', target: 'owned', actions: 'revive' },
        evict: { guard: 'evictsItsKey', target: 'free', actions: 'dropKey' },
      },
    },
  },
});

// ---------------------------------------------------------------------------------------------
// pool: the memory manager of one GPU

export interface PoolContext {
  /** Whether allocations must hold the lock (the `lock` allocator mode and `decode-owned` both use it). */
  locking: boolean;
  holder: string | null;
  /** Bumped by every write-back of utilisation. */
  version: number;
}

export type PoolEvent = { type: 'alloc' | 'alloc_query' | 'alloc_take' | 'alloc_commit'; worker: string } | { type: 'free' };

const poolGuards = {
  holdsLock: {
    check: ({ context, event }) => context.holder === (event as { worker: string }).worker,
    protects: 'SingleOwner',
    explain: (c, e) => `lock is held by ${c.holder ?? 'nobody'}, not ${(e as { worker: string }).worker}`,
  },
  lockless: { check: ({ context }) => !context.locking, explain: () => '' },
} satisfies Record<string, GuardDef<PoolContext, PoolEvent>>;

const poolUpdates = {
  lock: ({ event }) => ({ holder: (event as { worker: string }).worker }),
  writeBack: ({ context }) => ({ version: context.version + 1 }),
  unlock: () => ({ holder: null }),
} satisfies Record<string, Update<PoolContext, PoolEvent>>;

export const poolParts: MachineParts<PoolContext, PoolEvent> = {
  guards: poolGuards,
  updates: poolUpdates,
  unhandled: (state, c, e) =>
    e.type === 'free'
      ? { protects: 'BlocksAccounted', message: `lock is held by ${c.holder} between alloc_query and alloc_commit; a free must wait, or the write-back would count the freed block as used` }
      : state === 'locked'
        ? { protects: 'SingleOwner', message: `lock is held by ${c.holder}; ${e.worker} must wait before '${e.type}'` }
        : { protects: 'SingleOwner', message: `${e.worker} did '${e.type}' without first reading utilisation under the lock (alloc_query)` },
};

export const poolMachine = setup({
  types: { context: {} as PoolContext, events: {} as PoolEvent, input: {} as { locking: boolean } },
  guards: guardChecks(poolGuards),
  actions: assignActions(poolUpdates),
}).createMachine({
  id: 'pool',
  initial: 'unlocked',
  context: ({ input }) => ({ locking: input.locking, holder: null, version: 0 }),
  states: {
    unlocked: {
      on: {
        alloc: { actions: 'writeBack' },
        alloc_query: [{ guard: 'lockless', actions: [] }, { target: 'locked', actions: 'lock' }],
        // Only reachable when allocation does not lock: the steps of two workers interleave.
        alloc_take: { guard: 'lockless' },
        alloc_commit: { guard: 'lockless', actions: 'writeBack' },
        free: {}, // frees go through the memory manager too: not while an allocation holds the lock
      },
    },
    locked: {
      on: {
        alloc_take: { guard: 'holdsLock' },
        alloc_commit: { guard: 'holdsLock', target: 'unlocked', actions: ['writeBack', 'unlock'] },
      },
    },
  },
});

// ---------------------------------------------------------------------------------------------
// allocator: one worker's side of the protocol

export interface AllocatorContext {
  role: string;
  /** `decode-owned`: only decode (or unified) workers allocate. */
  decodeOwned: boolean;
  /** Pool version when this worker last read utilisation. */
  seen: number;
  /** Blocks taken since then, written back by alloc_commit. */
  taken: readonly number[];
}

export type AllocatorEvent =
  | { type: 'alloc'; worker: string }
  | { type: 'alloc_query'; worker: string; version: number }
  | { type: 'alloc_take'; worker: string; blocks: readonly number[] }
  | { type: 'alloc_commit'; worker: string };

const allocatorGuards = {
  mayAllocate: {
    check: ({ context }) => !(context.decodeOwned && context.role === 'prefill'),
    protects: 'SingleOwner',
    explain: () => `in decode-owned mode only the decode worker allocates; prefill writes into slots decode allocated for it`,
  },
} satisfies Record<string, GuardDef<AllocatorContext, AllocatorEvent>>;

const allocatorUpdates = {
  readUtilisation: ({ event }) => ({ seen: (event as Extract<AllocatorEvent, { type: 'alloc_query' }>).version, taken: [] }),
  recordTaken: ({ context, event }) => ({ taken: [...context.taken, ...(event as Extract<AllocatorEvent, { type: 'alloc_take' }>).blocks] }),
  forgetTaken: () => ({ taken: [] }),
} satisfies Record<string, Update<AllocatorContext, AllocatorEvent>>;

export const allocatorParts: MachineParts<AllocatorContext, AllocatorEvent> = {
  guards: allocatorGuards,
  updates: allocatorUpdates,
  unhandled: (state, _c, e) =>
    state === 'querying'
      ? { protects: 'SingleOwner', message: `is between alloc_query and alloc_commit; '${e.type}' would interleave two allocations of one worker` }
      : { protects: 'SingleOwner', message: `'${e.type}' without first reading utilisation (alloc_query)` },
};

export const allocatorMachine = setup({
  types: { context: {} as AllocatorContext, events: {} as AllocatorEvent, input: {} as { role: string; decodeOwned: boolean } },
  guards: guardChecks(allocatorGuards),
  actions: assignActions(allocatorUpdates),
}).createMachine({
  id: 'allocator',
  initial: 'idle',
  context: ({ input }) => ({ role: input.role, decodeOwned: input.decodeOwned, seen: 0, taken: [] }),
  states: {
    idle: {
      on: {
        alloc: { guard: 'mayAllocate' },
        alloc_query: { guard: 'mayAllocate', target: 'querying', actions: 'readUtilisation' },
      },
    },
    querying: {
      on: {
        alloc_take: { actions: 'recordTaken' },
        alloc_commit: { target: 'idle', actions: 'forgetTaken' },
      },
    },
  },
});
