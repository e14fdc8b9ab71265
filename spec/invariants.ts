// The safety properties as named definitions. Each says in one sentence what it protects; the state
// invariants are predicates over the system state, checked after every event (in the checker, the
// explorer and the engine's lockstep runs); the at-rest ones are checked where the system comes to rest
// (the end of a trace, a state with nothing left to do); the protocol rules are the guards' reasons.
import type { System } from './system.ts';

export type Family = 'NoLeak' | 'SingleOwnership' | 'SharedKv' | 'NothingLost' | 'OutputInvariance' | 'Protocol';

interface RuleInfo {
  family: Family;
  /**
   * For a protocol rule, the property its refusals protect: a request or worker off the protocol is where a
   * leak, a second owner, a lost request or a changed output begins. Other rules are their family.
   */
  atStake?: Exclude<Family, 'Protocol'>;
  /**
   * `state`: a predicate on every state; `at-rest`: on states where the system rests; `guard`: enforced by guards
   * only; `deadline`: a bound in time, judged at the first event past it (a trace's release deadline).
   */
  kind: 'state' | 'at-rest' | 'guard' | 'deadline';
  says: string;
}

export const RULES = {
  BlocksAccounted: {
    family: 'NoLeak',
    kind: 'state',
    says: 'Every block is on the free list or owned by a request; a block that is neither can never be allocated again.',
  },
  EndedRequestsRelease: {
    family: 'NoLeak',
    kind: 'at-rest',
    says: 'A request that has ended owns no blocks (and no state slot), except while a step or transfer that uses them is still in flight.',
  },
  QuiescentAllFree: {
    family: 'NoLeak',
    kind: 'at-rest',
    says: 'When no request is live and nothing is in flight, every block is on the free list (and every state slot free).',
  },
  ReleaseWithin: {
    family: 'NoLeak',
    kind: 'deadline',
    says: 'Under a release deadline D (`conform --release-within`, or the v3 header’s releaseWithin), everything an ended request held is freed within D seconds of the later of its end and the completion of the steps and transfers in flight on its blocks at its end; a transfer that never begins does not extend it (bug zoo Z7). Reported at the first event past the deadline.',
  },
  SingleOwner: {
    family: 'SingleOwnership',
    kind: 'state',
    says: 'A block has at most one owner, so no request reads or overwrites another’s KV.',
  },
  FreeListUnique: {
    family: 'SingleOwnership',
    kind: 'state',
    says: 'A block sits on the free list at most once, so it is never handed to two owners.',
  },
  FreeBlockUnowned: {
    family: 'SingleOwnership',
    kind: 'state',
    says: 'A block on the free list has no owner, so handing it out cannot give it a second one.',
  },
  NoFreeWhileInFlight: {
    family: 'SingleOwnership',
    kind: 'state',
    says: 'No block on the free list is used by a step or transfer in flight (or read by a core-attention task whose result is not yet consumed), so no late write or read lands in a block with a new owner.',
  },
  SingleWriter: {
    family: 'SingleOwnership',
    kind: 'state',
    says: 'A block is written only for the worker serving its owner: every step or transfer in flight for a live request runs for that request’s worker and writes only blocks the request owns — during a resize too.',
  },
  SingleServer: {
    family: 'SingleOwnership',
    kind: 'state',
    says: 'A live request is served by at most one worker: it is on no FIFO but its own worker’s.',
  },
  RefCountIsHolders: {
    family: 'SharedKv',
    kind: 'state',
    says: 'A block’s reference count is the number of live holders, each holding it once in its block table: the last release, and only it, returns the block to the free list (trace v2).',
  },
  CacheCoherent: {
    family: 'SharedKv',
    kind: 'state',
    says: 'A cache key maps to a block whose contents are exactly the tokens of that key: a block is cached under the key of its position in its holders, a hit takes only blocks cached under the keys it expects, a block is cached only once its positions are computed, and a block is evicted before it is handed out again (no stale entry: bug zoo Z2, Z21) (trace v2).',
  },
  WritesUnshared: {
    family: 'SharedKv',
    kind: 'guard',
    says: 'A step writes only blocks its request holds alone: a block shared by a fork or the prefix cache is read-only until a copy-on-write gives the writer its own (trace v2).',
  },
  NoEvictWhileLocked: {
    family: 'SharedKv',
    kind: 'guard',
    says: 'Under a radix cache, eviction takes only blocks no request holds: a request that matched a path reads it under a lock, and evicting a locked node frees pages it still reads (bug zoo Z16) (trace v2).',
  },
  CacheSizeAccounted: {
    family: 'SharedKv',
    kind: 'guard',
    says: 'The engine’s evictable and protected counters equal the cached blocks no request holds and those some request holds: the scheduler admits work against capacity that is really there (bug zoo Z17, Z22) (trace v2).',
  },
  HitSkipsExactly: {
    family: 'SharedKv',
    kind: 'guard',
    says: 'A cache hit, before the request’s first step, covers whole blocks of its prefix and never its whole sequence: the positions it skips are exactly those its blocks hold, and the last position is always computed (trace v2).',
  },
  PartialFreeOnlyUnneeded: {
    family: 'NothingLost',
    kind: 'guard',
    says: 'A live request frees blocks of a layer group only when the group has a window and every position they hold is below its computed length minus the window: its oldest blocks first, never a position a later step still reads (bug zoo Z20) (trace v3).',
  },
  TaskReadsOwnKv: {
    family: 'SingleOwnership',
    kind: 'guard',
    says: 'A core-attention task is made during its request’s step on that worker, for query positions that step computes, and reads only blocks its request holds, every one it needs: no task attends to another request’s KV or to KV that is not there (trace v4).',
  },
  TaskComputedOnce: {
    family: 'Protocol',
    atStake: 'NothingLost',
    kind: 'guard',
    says: 'A core-attention task is dispatched once, computed once after its dispatch, and dispatched again only when its server is lost: no task is lost or duplicated, a resize or a server loss included (trace v4).',
  },
  ResultConsumedOnce: {
    family: 'OutputInvariance',
    kind: 'guard',
    says: 'A task’s result is read by its worker exactly once, after the task ended and before its buffer is reused: the output attends to the attention that was computed (trace v4).',
  },
  BufferNotReused: {
    family: 'SingleOwnership',
    kind: 'guard',
    says: 'An attention server’s buffer holds one task’s inputs or unread result at a time: no dispatch overwrites a task in flight or a result not yet read (ping-pong included) (trace v4).',
  },
  InPlaceKeepsInputs: {
    family: 'OutputInvariance',
    kind: 'guard',
    says: 'A task that writes its output in place (over its own inputs) ends only when no other unfinished task still reads those inputs, and a task reads only buffers that still hold inputs (trace v4).',
  },
  StepWaitsForTasks: {
    family: 'OutputInvariance',
    kind: 'guard',
    says: 'A step ends only after the results of all its core-attention tasks are consumed: no step completes without its attention (trace v4).',
  },
  SlotSingleOwner: {
    family: 'SingleOwnership',
    kind: 'guard',
    says: 'A state slot is given to one request at a time and given back once, by it, so no request advances another’s recurrent state (trace v3).',
  },
  StepHasState: {
    family: 'SingleOwnership',
    kind: 'guard',
    says: 'A request of a hybrid model steps only while it owns a state slot on its worker’s GPU, so its recurrent state is written where it alone reads it (trace v3).',
  },
  StepsInOrder: {
    family: 'NothingLost',
    kind: 'guard',
    says: 'A step of a request starts where its computed and accepted positions end and computes consecutive positions, so no position is skipped, computed twice, or computed on top of rolled-back drafts (bug zoo Z19) (trace v3).',
  },
  KvMatchesOutput: {
    family: 'OutputInvariance',
    kind: 'guard',
    says: 'Where a step names the token ids it writes, every position of the request’s output holds the token the output has there, so the cache never holds a token the output lacks (bug zoo Z18) (trace v3).',
  },
  AcceptIsPrefix: {
    family: 'OutputInvariance',
    kind: 'guard',
    says: 'A speculative verify accepts a prefix of its drafts, says how many at its end, and is followed by exactly that many tokens, the accepted drafts themselves, then the correction or bonus token: speculative decoding emits what plain greedy decoding would (trace v3).',
  },
  DraftsAtTail: {
    family: 'Protocol',
    atStake: 'OutputInvariance',
    kind: 'guard',
    says: 'Draft positions are the last positions of a decoding request’s step, right after the position of its last token, so acceptance is a prefix and rolled-back positions are the step’s last (trace v3).',
  },
  ServedByLiveWorker: {
    family: 'NothingLost',
    kind: 'state',
    says: 'Every live request that left the waiting queue is served by a worker that has not stopped, so a resize drops nothing.',
  },
  EveryRequestEnds: {
    family: 'NothingLost',
    kind: 'at-rest',
    says: 'At quiescence every admitted request has ended, finished or aborted.',
  },
  EndsOnce: {
    family: 'NothingLost',
    kind: 'guard',
    says: 'A request ends exactly once: it is never finished or aborted twice.',
  },
  TokensInOrder: {
    family: 'NothingLost',
    kind: 'guard',
    says: 'A request’s tokens are appended as 0, 1, 2, … with no gap or repeat, across preemption, migration and resize; a computed token is never dropped.',
  },
  KeepsLiveKv: {
    family: 'NothingLost',
    kind: 'guard',
    says: 'A live request keeps the blocks that hold the KV its worker computes with until it ends or is retracted.',
  },
  LifecycleOrder: {
    family: 'Protocol',
    atStake: 'NothingLost',
    kind: 'guard',
    says: 'A request moves only along its lifecycle: waiting, prefilling in chunks, prefilled, handed off, decoding, ended; retracted back to waiting.',
  },
  WorkersServeWhenReady: {
    family: 'Protocol',
    atStake: 'NothingLost',
    kind: 'guard',
    says: 'Only a ready worker of the right role serves: prefill work on prefill or unified workers, decode work on decode or unified workers.',
  },
  ResizeHandoff: {
    family: 'Protocol',
    atStake: 'SingleOwnership',
    kind: 'guard',
    says: 'A resize follows the handoff: new workers start and are all ready before old ones hand over (delayed switch); each old worker stops after its own iteration (asynchronous switch); then the new split is stable.',
  },
  ShareRule: {
    family: 'Protocol',
    atStake: 'SingleOwnership',
    kind: 'guard',
    says: 'Shares follow the partition rule: each within 1..100 (semi-PD oversubscription), and summing to exactly 100 under the exact rule (Nexus).',
  },
  KnownIds: {
    family: 'Protocol',
    atStake: 'NothingLost',
    kind: 'guard',
    says: 'Every id an event names exists: a request after its arrive, a worker after the header or its worker_start, a block within its pool, a step or transfer while in flight; new ids are not reused.',
  },
} as const satisfies Record<string, RuleInfo>;

export type InvariantName = keyof typeof RULES;
export const RULE_NAMES = Object.keys(RULES) as InvariantName[];

export interface Violation {
  invariant: InvariantName;
  family: Family;
  message: string;
}

/** The property a rule's violation puts at stake: its family, or for a protocol rule the property it protects. */
export function propertyOf(rule: InvariantName): Exclude<Family, 'Protocol'> {
  const info: RuleInfo = RULES[rule];
  return info.atStake ?? (info.family as Exclude<Family, 'Protocol'>);
}

function violation(invariant: InvariantName, message: string): Violation {
  return { invariant, family: RULES[invariant].family, message };
}

// ---------------------------------------------------------------------------------------------
// State invariants, per entity, so that the checker can test only what an event touched.

export function checkBlock(sys: System, b: number): Violation | null {
  const { owners, inFreeList } = sys.blocks[b].context;
  if (inFreeList === 0 && owners.length === 0) return violation('BlocksAccounted', `block ${b} is neither on the free list nor owned`);
  if (sys.header.version === 1) {
    if (owners.length > 1) return violation('SingleOwner', `block ${b} has ${owners.length} owners: ${owners.join(', ')}`);
  } else {
    const v = checkSharedBlock(sys, b);
    if (v) return v;
  }
  if (inFreeList > 1) return violation('FreeListUnique', `block ${b} is on the free list ${inFreeList} times`);
  if (inFreeList > 0 && owners.length > 0) return violation('FreeBlockUnowned', `block ${b} is on the free list but owned by ${owners.join(', ')}`);
  if (inFreeList > 0 && sys.holds[b] > 0) return violation('NoFreeWhileInFlight', `block ${b} is on the free list while ${sys.holdersOf(b)} still uses it`);
  return null;
}

/** Trace v2: the holders are the requests whose tables hold the block, once each, and its key fits each of them. */
function checkSharedBlock(sys: System, b: number): Violation | null {
  const { owners, key } = sys.blocks[b].context;
  if (new Set(owners).size !== owners.length) return violation('RefCountIsHolders', `block ${b} counts a holder twice (${owners.join(', ')}): its count would never return to zero`);
  for (const holder of owners) {
    const r = sys.requestIndex.get(holder);
    const table = r === undefined ? [] : sys.tables[r];
    const at = table.indexOf(b);
    if (at < 0 || table.indexOf(b, at + 1) >= 0)
      return violation('RefCountIsHolders', `block ${b} counts ${holder} among its ${owners.length} holder(s), but ${holder}'s block table holds it ${at < 0 ? 'not at all' : 'twice'}`);
    const expected = r === undefined ? undefined : sys.keys[r][at];
    if (key !== null && expected !== undefined && expected !== key)
      return violation('CacheCoherent', `block ${b} is cached under key ${key}, but it is block ${at} of ${holder}, whose key there is ${expected}`);
  }
  return null;
}

export function checkRequest(sys: System, r: number): Violation | null {
  const snap = sys.requests[r];
  const id = sys.requestIds[r];
  const server = snap.context.server;
  if (server !== null && sys.isLive(r)) {
    const w = sys.workerIndex.get(server)!;
    if (sys.workers[w].value === 'stopped') return violation('ServedByLiveWorker', `request ${id} is served by ${server}, which has stopped`);
  }
  // A free deferred to a completion signal with nothing in flight to send it will never happen: a leak now.
  if (snap.context.deferredFree && snap.context.inFlight === 0)
    return violation('EndedRequestsRelease', `request ${id} ${snap.value}; its free waits for a completion signal, but nothing is in flight to send it`);
  if (sys.header.version !== 1) {
    for (const b of sys.tables[r]) {
      if (!sys.blocks[b].context.owners.includes(id))
        return violation('RefCountIsHolders', `request ${id}'s block table holds block ${b}, which does not count it among its holders (${sys.blocks[b].context.owners.join(', ') || 'none'})`);
    }
  }
  if (sys.isLive(r) && snap.value !== 'retracting') {
    for (const opId of sys.opsOf(r)) {
      const op = sys.ops.get(opId)!;
      if (op.writer !== server) return violation('SingleWriter', `${op.label} writes request ${id}'s blocks for ${op.writer}, but ${id} is served by ${server ?? 'no worker'}`);
    }
  }
  return null;
}

export function checkOp(sys: System, opId: string): Violation | null {
  const op = sys.ops.get(opId);
  if (!op) return null;
  for (let k = 0; k < op.reqs.length; k++) {
    const req = sys.requestIds[op.reqs[k]];
    for (const b of op.held[k]) {
      const owners = sys.blocks[b].context.owners;
      if (!owners.includes(req)) return violation('SingleWriter', `${op.label} writes block ${b} for request ${req}, but the block is owned by ${owners.join(', ') || 'nobody'}`);
    }
  }
  return null;
}

export function checkWorker(sys: System, w: number): Violation | null {
  const snap = sys.workers[w];
  const id = sys.workerIds[w];
  if (snap.value === 'stopped' && (snap.context.load > 0 || snap.context.fifo.length > 0))
    return violation('ServedByLiveWorker', `worker ${id} has stopped while serving ${snap.context.load} request(s)${snap.context.fifo.length ? ` (FIFO: ${snap.context.fifo.join(', ')})` : ''}`);
  for (const req of snap.context.fifo) {
    const r = sys.requestIndex.get(req)!;
    const server = sys.requests[r].context.server;
    if (server !== id) return violation('SingleServer', `request ${req} is on ${id}'s FIFO but served by ${server ?? 'no worker'}`);
  }
  return null;
}

/** Every state invariant over the whole state (the explorer and tests; the checker checks what changed). */
export function checkState(sys: System): Violation | null {
  for (let b = 0; b < sys.blocks.length; b++) {
    const v = checkBlock(sys, b);
    if (v) return v;
  }
  for (let r = 0; r < sys.requests.length; r++) {
    const v = checkRequest(sys, r);
    if (v) return v;
  }
  for (const opId of sys.ops.keys()) {
    const v = checkOp(sys, opId);
    if (v) return v;
  }
  for (let w = 0; w < sys.workers.length; w++) {
    const v = checkWorker(sys, w);
    if (v) return v;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// At-rest invariants

/** The end of a trace (or a state with nothing enabled): ended requests have released their blocks. */
export function checkAtRest(sys: System): Violation | null {
  for (let r = 0; r < sys.requests.length; r++) {
    const { value, context } = sys.requests[r];
    if ((value === 'finished' || value === 'aborted') && context.inFlight === 0) {
      const blocks = sys.tables[r];
      if (blocks.length > 0)
        return violation('EndedRequestsRelease', `request ${sys.requestIds[r]} ${value} but still owns block(s) ${blocks.join(', ')}, and nothing in flight will release them`);
      if (context.slots > 0) return violation('EndedRequestsRelease', `request ${sys.requestIds[r]} ${value} but still owns ${context.slots} state slot(s), and nothing in flight will release them`);
    }
  }
  if (sys.liveCount === 0 && sys.ops.size === 0) {
    for (let b = 0; b < sys.blocks.length; b++) {
      const state = sys.blocks[b].value;
      // A cached block is on the free list too: it only keeps its key until a hit or an eviction.
      if (state !== 'free' && state !== 'cached') return violation('QuiescentAllFree', `no request is live and nothing is in flight, but block ${b} is not free`);
    }
    for (let i = 0; i < sys.slots.length; i++)
      if (sys.slots[i].value !== 'free') return violation('QuiescentAllFree', `no request is live and nothing is in flight, but state slot ${i} is owned by ${sys.slots[i].context.owner}`);
    const busy = sys.cad?.busyBuffer();
    if (busy) return violation('QuiescentAllFree', `no request is live and nothing is in flight, but ${busy}`);
  }
  return null;
}

/** `--quiescent`: every request ended, nothing in flight, every block free. */
export function checkQuiescent(sys: System): Violation | null {
  for (let r = 0; r < sys.requests.length; r++)
    if (sys.isLive(r)) return violation('EveryRequestEnds', `request ${sys.requestIds[r]} is still ${sys.requests[r].value}`);
  if (sys.ops.size > 0) return violation('QuiescentAllFree', `${[...sys.ops.values()][0].label} is still in flight`);
  return checkAtRest(sys);
}
