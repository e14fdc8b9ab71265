// The environment of the explored system: in a state, the events an engine, its clients and its partition
// controller may propose next. Proposals are a superset; the spec's guards decide which are allowed (a
// refused proposal is simply not a transition). Every choice a real engine has is a branch here: which
// worker, which request, which blocks, when to abort, preempt or resize.
import type { Refusal } from '../../spec/machine-kit.ts';
import type { System } from '../../spec/system.ts';
import type { BatchItem, TraceEvent } from '../../spec/trace-format.ts';
import { keysOf, type ExploreConfig } from './config.ts';
import type { Variant } from './variants.ts';

/** A state of the search: the system and the environment's own counters. */
export interface Node {
  sys: System;
  /** Preemptions so far, or -1 where they are not bounded (and not counted). */
  preemptions: number;
  /** Trace v3: verifies so far (batch items with drafts), against the bound's `verifies`. */
  verifies: number;
  /** A judged variant (variants.ts): the reference spec, judging the events `sys` (the variant) takes. */
  ref?: System;
  /** A judged variant: the reference spec's refusal of the event that led here (the node is not explored). */
  refused?: Refusal;
}

const LIVE_WORKER = new Set(['idle', 'busy']);

/** k-element subsets of `items` (all of them, or only the first when symmetry makes them equivalent). */
function choose(items: number[], k: number, all: boolean): number[][] {
  if (k <= 0 || items.length < k) return [];
  if (!all) return [items.slice(0, k)];
  const out: number[][] = [];
  const pick = (start: number, acc: number[]) => {
    if (acc.length === k) return void out.push(acc.slice());
    for (let i = start; i < items.length; i++) {
      acc.push(items[i]);
      pick(i + 1, acc);
      acc.pop();
    }
  };
  pick(0, []);
  return out;
}

export function proposals(node: Node, config: ExploreConfig, variant: Variant | null): TraceEvent[] {
  const sys = node.sys;
  const out: TraceEvent[] = [];
  const t = 0;
  const T = config.blockSize;
  const B = config.blocks;
  const allSubsets = !config.symmetry;
  const workers = sys.workers.map((w, i) => ({ id: sys.workerIds[i], value: w.value, ...w.context, alloc: sys.allocators[i] }));
  const live = workers.filter((w) => LIVE_WORKER.has(w.value));
  const byId = new Map(workers.map((w) => [w.id, w]));
  const epoch = sys.partition[0].context.epoch;

  const freeIn = (pool: number) => {
    const ids: number[] = [];
    for (let b = pool * B; b < (pool + 1) * B; b++) if (sys.blocks[b].value === 'free') ids.push(b);
    return ids;
  };
  // Blocks free in the utilisation a querying worker read: free now, or taken by an allocation that had not
  // written utilisation back before the read (only possible without the lock).
  const freeInView = (pool: number, seen: number, mine: readonly number[]) => {
    const ids: number[] = [];
    for (let b = pool * B; b < (pool + 1) * B; b++) {
      const c = sys.blocks[b];
      if (mine.includes(b)) continue;
      if (c.value === 'free' || !c.context.committed || c.context.committedAt > seen) ids.push(b);
    }
    return ids;
  };

  // --- requests arrive in order (they are identical, so the order loses nothing), and before anything else:
  // an arrival only adds a waiting request, so it commutes with every other event and disables none;
  // moving it first reaches the same states (a partial-order reduction).
  if (sys.requests.length < config.requests) {
    const i = sys.requests.length;
    return [{ t, ev: 'arrive', req: `r${i}`, prompt: config.prompt, maxTokens: config.output, ...(config.sharing ? { keys: keysOf(config, i) } : {}) }];
  }

  // --- trace v3: layer groups (each needs its own blocks for every position), state slots, verifies left
  const groups = sys.header.groups;
  const slotsPerGpu = sys.header.stateSlots ?? 0;
  const verifiesLeft = config.positions && config.drafts > 0 ? config.verifies - node.verifies : 0;
  // The blocks request r has for group g in `pool`: those it holds and, in a windowed group, those it freed
  // out of the window (they count for its positions, as the spec's per-group coverage counts them).
  const have = (r: number, g: number, pool: number): number => {
    if (!groups) return sys.requests[r].context.owned[pool] ?? 0;
    let n = sys.dropped.get(r)?.[g] ?? 0;
    for (const b of sys.tables[r]) if (sys.blockGroup![b] === g && sys.poolOf(b) === pool) n++;
    return n;
  };
  // Whether request r holds, in every group, the blocks of positions 0 .. upTo − 1 in `pool`.
  const covered = (r: number, pool: number, upTo: number): boolean => {
    const n = Math.ceil(upTo / T);
    for (let g = 0; g < (groups?.length ?? 1); g++) if (n > have(r, g, pool)) return false;
    return true;
  };
  // Free state slots of a GPU (one is enough where symmetry makes them equivalent).
  const freeSlots = (gpu: number) => {
    const ids: number[] = [];
    for (let s = gpu * slotsPerGpu; s < (gpu + 1) * slotsPerGpu; s++) if (sys.slots[s].value === 'free') ids.push(s);
    return allSubsets ? ids : ids.slice(0, 1);
  };

  // --- per request
  const needs: { req: string; pool: number; need: number; allocators: string[]; group?: string }[] = [];
  // What request r needs in `pool` to hold positions 0 .. upTo − 1: blocks of every group (one need per group).
  // (A verify's need may be the plain step's: it is listed once.)
  const needFor = (r: number, pool: number, upTo: number, allocators: string[]) => {
    const id = sys.requestIds[r];
    for (let g = 0; g < (groups?.length ?? 1); g++) {
      const need = Math.ceil(upTo / T) - have(r, g, pool);
      const group = groups?.[g].id;
      if (need > 0 && !needs.some((n) => n.req === id && n.pool === pool && n.group === group && n.need === need)) needs.push({ req: id, pool, need, allocators, ...(group ? { group } : {}) });
    }
  };
  const slotShort = new Set<number>();
  const abortsUsed = sys.requests.filter((r) => r.value === 'aborted').length;
  for (let r = 0; r < sys.requests.length; r++) {
    const { value, context: c } = sys.requests[r];
    const id = sys.requestIds[r];
    const server = c.server === null ? null : byId.get(c.server)!;
    const length = c.prompt + c.generated;
    const pool = server?.gpu ?? 0;
    if (value !== 'finished' && value !== 'aborted' && abortsUsed < config.aborts) out.push({ t, ev: 'abort', req: id });
    if (c.tokenOwed && value !== 'prefilling') out.push({ t, ev: 'token', req: id, index: c.generated });
    switch (value) {
      case 'waiting': {
        for (const w of live) if (w.role !== 'decode') out.push({ t, ev: 'schedule', req: id, worker: w.id });
        if (config.allocator === 'decode-owned') needFor(r, 0, Math.min(length, config.chunk), live.filter((w) => w.role !== 'prefill').map((w) => w.id));
        break;
      }
      case 'prefilling': {
        const allocators = config.allocator === 'decode-owned' ? live.filter((w) => w.role !== 'prefill').map((w) => w.id) : server && LIVE_WORKER.has(server.value) ? [server.id] : [];
        needFor(r, pool, Math.min(length, c.computed + config.chunk), allocators);
        // Trace v3, a hybrid model: the request's recurrent state needs a slot before its first step.
        if (slotsPerGpu > 0 && c.slots === 0 && server && LIVE_WORKER.has(server.value)) {
          const slots = freeSlots(server.gpu);
          if (slots.length === 0) slotShort.add(server.gpu);
          for (const slot of slots) out.push({ t, ev: 'slot_alloc', worker: server.id, req: id, slot });
        }
        break;
      }
      case 'prefilled': {
        if (server?.role === 'unified') out.push({ t, ev: 'join', req: id, worker: server.id });
        else if (server) for (const d of live) if (d.role === 'decode') out.push({ t, ev: 'handoff', req: id, from: server.id, to: d.id });
        if (c.generated >= config.output) out.push({ t, ev: 'finish', req: id });
        break;
      }
      case 'handedOff': {
        // From the head of the FIFO within a GPU; after a cross-GPU transfer, in any order.
        if (server && (server.fifo[0] === id || !server.fifo.includes(id))) out.push({ t, ev: 'join', req: id, worker: server.id });
        if (c.awaitingKv && server) {
          // Disaggregated: the decode side pre-allocates, then the KV is transferred, then the prefill copy is freed.
          const before = needs.length;
          needFor(r, server.gpu, c.computed, [server.id]);
          if (needs.length === before && c.inFlight === 0) {
            const from = workers.find((w) => w.role === 'prefill' && w.gpu !== server.gpu);
            if (from) out.push({ t, ev: 'transfer_begin', xfer: `x${id}`, req: id, from: from.id, to: server.id });
          }
        }
        const oldCopy = sys.tables[r].filter((b) => sys.poolOf(b) !== pool);
        if (!c.awaitingKv && oldCopy.length > 0) out.push({ t, ev: 'free', req: id, blocks: oldCopy });
        break;
      }
      case 'decoding': {
        if (server) {
          const allocators = config.allocator === 'decode-owned' || server.role !== 'prefill' ? [server.id] : [];
          needFor(r, pool, c.computed + 1, allocators);
          // Trace v3: a verify of k drafts also writes k positions after the last token's.
          if (verifiesLeft > 0) for (let k = 1; k <= config.drafts; k++) needFor(r, pool, c.computed + 1 + k, allocators);
        }
        if (c.generated >= config.output) out.push({ t, ev: 'finish', req: id });
        const oldCopy = sys.tables[r].filter((b) => sys.poolOf(b) !== pool);
        if (oldCopy.length > 0) out.push({ t, ev: 'free', req: id, blocks: oldCopy });
        break;
      }
      case 'retracting':
      case 'finished':
      case 'aborted': {
        const table = sys.tables[r];
        if (table.length > 0) {
          out.push({ t, ev: 'free', req: id, blocks: table.slice() });
          if (variant?.duplicateRelease) out.push({ t, ev: 'free', req: id, blocks: [...table, table[table.length - 1]] });
        }
        if (c.slots > 0) for (let s = 0; s < sys.slots.length; s++) if (sys.slots[s].context.owner === id) out.push({ t, ev: 'slot_free', req: id, slot: s });
        break;
      }
    }
    // Trace v3: a live request frees the oldest blocks of a windowed group, 1, 2, … of them: every candidate;
    // the spec refuses those the window still reads (PartialFreeOnlyUnneeded) or a step in flight holds.
    if (groups && server && (value === 'prefilling' || value === 'handedOff' || value === 'decoding'))
      for (let g = 0; g < groups.length; g++) {
        if (groups[g].window === undefined) continue;
        const mine = sys.tables[r].filter((b) => sys.blockGroup![b] === g && sys.poolOf(b) === pool);
        // Only blocks holding some computed position: a free past them (allocated ahead, not written) is a
        // tail free, which the spec allows and which, proposed again after every allocation, would only spin.
        const dropped = sys.dropped.get(r)?.[pool * groups.length + g] ?? 0;
        const written = Math.min(mine.length, Math.ceil(c.computed / config.blockSize) - dropped);
        for (let j = 1; j <= written; j++) out.push({ t, ev: 'free', req: id, blocks: mine.slice(0, j), group: groups[g].id });
      }
  }

  // --- trace v2: the prefix cache, forks and copy-on-write
  // The pools where some request cannot get the blocks it needs (or a copy-on-write a free block).
  const short = new Set<number>(slotShort);
  for (const n of needs) if (freeIn(n.pool).length < n.need) short.add(n.pool);
  if (config.sharing) {
    sharingProposals(sys, config, variant, freeIn, allSubsets, short, out);
    evictions(sys, config, short, out);
  }
  const pressure = short.size > 0;

  // --- preemption: a decoding request is retracted when some request cannot get the blocks it needs
  const preemptionsLeft = variant?.unboundedPreemption || node.preemptions < config.preemptions;
  if (preemptionsLeft && pressure) {
    for (let r = 0; r < sys.requests.length; r++) {
      const { value, context: c } = sys.requests[r];
      // Trace v3: a request still prefilling may be preempted too (vLLM v1 preempts any running request).
      const victim = value === 'decoding' || (value === 'prefilling' && (variant?.unboundedPreemption || config.positions));
      if (victim && !c.tokenOwed && c.server) out.push({ t, ev: 'preempt', req: sys.requestIds[r], worker: c.server });
    }
  }

  // --- allocation
  const oneStepAlloc = config.allocSteps === 'one' || (config.allocSteps === 'auto' && (variant?.system.locking ?? true));
  for (const w of workers) {
    if (!LIVE_WORKER.has(w.value)) continue;
    const mine = needs.filter((n) => n.allocators.includes(w.id));
    if (oneStepAlloc) {
      for (const n of mine) for (const blocks of choose(freeIn(n.pool), n.need, allSubsets)) out.push({ t, ev: 'alloc', worker: w.id, req: n.req, blocks, ...(n.group ? { group: n.group } : {}) });
      continue;
    }
    if (w.alloc.value === 'idle') {
      if (mine.some((n) => n.pool === w.gpu && freeIn(w.gpu).length > 0)) out.push({ t, ev: 'alloc_query', worker: w.id });
    } else {
      const view = freeInView(w.gpu, w.alloc.context.seen, w.alloc.context.taken);
      let takeable = false;
      for (const n of mine) {
        if (n.pool !== w.gpu) continue;
        for (const blocks of choose(view, Math.min(n.need, view.length), allSubsets)) {
          out.push({ t, ev: 'alloc_take', worker: w.id, req: n.req, blocks });
          takeable = true;
        }
      }
      // Write back once something was taken, or when nothing is left to take (never a lock-and-release spin).
      if (w.alloc.context.taken.length > 0 || !takeable) out.push({ t, ev: 'alloc_commit', worker: w.id });
    }
  }

  // --- steps: a worker with no iteration in flight runs one over every request it can advance
  // (Trace v3: each item names its first position, and a decoding item may instead verify 1..drafts drafts, as
  // long as verifies are left: every combination is a batch.)
  for (const w of live) {
    if (w.inFlight > 0) continue;
    const batch: BatchItem[] = [];
    const verifies: BatchItem[][] = [];
    for (let r = 0; r < sys.requests.length; r++) {
      const { value, context: c } = sys.requests[r];
      if (c.server !== w.id || c.inFlight > 0 || c.tokenOwed) continue;
      if (slotsPerGpu > 0 && c.slots === 0) continue;
      const req = sys.requestIds[r];
      if (value === 'prefilling' && w.role !== 'decode') {
        const tokens = Math.min(config.chunk, c.prompt + c.generated - c.computed);
        if (tokens > 0 && covered(r, w.gpu, c.computed + tokens)) batch.push(config.positions ? { req, tokens, from: c.computed } : { req, tokens });
      } else if (value === 'decoding' && w.role !== 'prefill') {
        if (covered(r, w.gpu, c.computed + 1)) {
          batch.push(config.positions ? { req, tokens: 1, from: c.computed } : { req, tokens: 1 });
          const options: BatchItem[] = [];
          for (let k = 1; k <= config.drafts && verifiesLeft > 0; k++) if (covered(r, w.gpu, c.computed + 1 + k)) options.push({ req, tokens: 1 + k, from: c.computed, draft: k });
          if (options.length > 0) verifies[batch.length - 1] = options;
        }
      }
    }
    if (batch.length === 0) continue;
    out.push({ t, ev: 'step_begin', worker: w.id, step: '1', batch });
    if (verifies.length === 0) continue;
    // Every batch with some items verifying, at most as many as verifies are left.
    const extend = (i: number, acc: BatchItem[], used: number) => {
      if (i === batch.length) {
        if (used > 0) out.push({ t, ev: 'step_begin', worker: w.id, step: '1', batch: acc.slice() });
        return;
      }
      acc.push(batch[i]);
      extend(i + 1, acc, used);
      acc.pop();
      if (used < verifiesLeft)
        for (const v of verifies[i] ?? []) {
          acc.push(v);
          extend(i + 1, acc, used + 1);
          acc.pop();
        }
    };
    extend(0, [], 0);
  }
  if (sys.cad) cadProposals(sys, config, out);
  for (const [key, op] of sys.ops) {
    if (op.kind !== 'step') out.push({ t, ev: 'transfer_end', xfer: op.label.slice('transfer '.length) });
    // Trace v4: a step's attention is its tasks: it ends only once every shard of every item is a task.
    else if (sys.cad && shardsLeft(sys, config, key, op)) continue;
    else if (!op.drafts?.some((k) => k > 0)) out.push({ t, ev: 'step_end', worker: op.writer, step: '1' });
    else {
      // Trace v3: the environment chooses how many drafts of each verify the target model accepts (0..k).
      let choices: Record<string, number>[] = [{}];
      op.reqs.forEach((r, i) => {
        const k = op.drafts![i];
        if (k > 0) choices = choices.flatMap((acc) => Array.from({ length: k + 1 }, (_, a) => ({ ...acc, [sys.requestIds[r]]: a })));
      });
      for (const accepted of choices) out.push({ t, ev: 'step_end', worker: op.writer, step: '1', accepted });
    }
  }

  // --- resize
  const partition = sys.partition[0];
  if (partition.value === 'stable' && epoch < config.resizes) {
    const split = config.policy ? config.policy.decide(sys) : config.splits[epoch % config.splits.length];
    if (split) out.push({ t, ev: 'resize_begin', epoch: epoch + 1, prefill: split.prefill, decode: split.decode });
  } else if (partition.value === 'initialising') {
    const target = partition.context.target!;
    for (const old of workers.filter((w) => w.epoch === epoch && w.value !== 'stopped')) {
      const id = `${old.role === 'prefill' ? 'P' : old.role === 'decode' ? 'D' : 'U'}${epoch + 1}`;
      const existing = byId.get(id);
      if (!existing) out.push({ t, ev: 'worker_start', worker: id, role: old.role, epoch: epoch + 1, share: old.role === 'prefill' ? target.prefill : target.decode, gpu: old.gpu });
      else if (existing.value === 'starting') out.push({ t, ev: 'worker_ready', worker: id });
    }
  } else if (partition.value === 'switching') {
    const olds = workers.filter((w) => w.epoch === epoch && w.value !== 'stopped');
    for (const old of olds) {
      const successor = workers.find((w) => w.epoch === epoch + 1 && w.role === old.role);
      for (let r = 0; r < sys.requests.length; r++) {
        const c = sys.requests[r].context;
        if (c.server === old.id && c.inFlight === 0 && successor) out.push({ t, ev: 'migrate', req: sys.requestIds[r], from: old.id, to: successor.id });
      }
      if (old.value === 'idle') out.push({ t, ev: 'worker_stop', worker: old.id });
    }
    if (olds.length === 0) out.push({ t, ev: 'resize_end', epoch: epoch + 1 });
  }
  // A worker in the middle of an allocation (between alloc_query and alloc_commit) does nothing else: the
  // three steps are one call of its allocator. Other workers and clients go on.
  const allocating = new Set(workers.filter((w) => w.alloc.value === 'querying').map((w) => w.id));
  if (allocating.size === 0) return out;
  return out.filter((ev) => {
    if (ev.ev === 'alloc_take' || ev.ev === 'alloc_commit' || ev.ev === 'arrive' || ev.ev === 'abort') return true;
    if ('worker' in ev && allocating.has(ev.worker)) return false;
    if ((ev.ev === 'handoff' || ev.ev === 'migrate') && (allocating.has(ev.from) || allocating.has(ev.to))) return false;
    const req = 'req' in ev ? ev.req : ev.ev === 'fork' ? ev.parent : null;
    if (req !== null) {
      const server = sys.requests[sys.requestIndex.get(req)!].context.server;
      if (server !== null && allocating.has(server)) return false;
    }
    return true;
  });
}

/**
 * Trace v2 proposals: entering a request's full blocks in the cache, hits on cached blocks before a request's
 * first step, evictions when some request cannot get the blocks it needs (vLLM evicts lazily, when it
 * allocates; SGLang when the pool runs short), forks of decoding requests (bounded), copies of a shared block
 * a request's next step writes, and the cache's counters as the engine reports them. Adds to `short` the
 * pools where a copy cannot get a free block (pressure, as where an allocation cannot).
 */
function sharingProposals(sys: System, config: ExploreConfig, variant: Variant | null, freeIn: (pool: number) => number[], allSubsets: boolean, short: Set<number>, out: TraceEvent[]): void {
  const t = 0;
  const T = config.blockSize;
  const B = config.blocks;
  const poolOfServer = (server: string | null) => (server === null ? 0 : sys.workers[sys.workerIndex.get(server)!].context.gpu);
  const computing = (r: number) => {
    let n = 0;
    for (const key of sys.reqOps[r]) {
      const op = sys.ops.get(key)!;
      if (op.kind !== 'step') continue;
      const k = op.reqs.indexOf(r);
      if (k >= 0) n += op.tokens[k];
    }
    return n;
  };
  const forksLeft = sys.requests.length - config.requests < config.forks;
  for (let r = 0; r < sys.requests.length; r++) {
    const { value, context: c } = sys.requests[r];
    if (value === 'waiting' || value === 'retracting' || value === 'finished' || value === 'aborted') continue;
    const id = sys.requestIds[r];
    const keys = sys.keys[r];
    const table = sys.tables[r];
    const length = c.prompt + c.generated;
    const pool = poolOfServer(c.server);
    // Full blocks (computed, or being computed by a step in flight) enter the cache under their keys.
    const full = c.computed + computing(r);
    for (let i = 0; i < table.length && i < keys.length && (i + 1) * T <= full; i++) {
      const key = keys[i];
      const blk = sys.blocks[table[i]];
      if (key !== undefined && blk.value === 'owned' && blk.context.key === null) out.push({ t, ev: 'cache_insert', req: id, block: table[i], key });
    }
    // A hit, before the first step and block: cached blocks under the request's first keys (any cached block
    // for a variant that does not compare keys), whole blocks, never the last position.
    if (value === 'prefilling' && c.computed === 0 && c.inFlight === 0 && table.length === 0) {
      const most = Math.min(keys.length, Math.floor((length - 1) / T));
      let prefixes: number[][] = [[]];
      for (let i = 0; i < most; i++) {
        const candidates: number[] = [];
        for (let b = pool * B; b < (pool + 1) * B; b++) {
          const k = sys.blocks[b].context.key;
          if (k !== null && (k === keys[i] || variant?.hitsAnyKey)) candidates.push(b);
        }
        prefixes = prefixes.flatMap((p) => candidates.filter((b) => !p.includes(b)).map((b) => [...p, b]));
        if (prefixes.length === 0) break;
        for (const blocks of prefixes) out.push({ t, ev: 'cache_hit', req: id, blocks, tokens: blocks.length * T });
      }
    }
    if (value !== 'decoding' || c.server === null || c.tokenOwed || c.inFlight > 0) continue;
    if (forksLeft && c.generated < config.output) out.push({ t, ev: 'fork', parent: id, child: `r${sys.requests.length}` });
    // Copy-on-write: the block the next decode step writes (in its worker's pool), where others hold it too.
    const here = sys.header.gpus === 1 ? table : table.filter((b) => sys.poolOf(b) === pool);
    const at = Math.floor(c.computed / T);
    if (at < here.length && sys.blocks[here[at]].context.owners.length > 1) {
      const copies = freeIn(pool);
      if (copies.length === 0) short.add(pool);
      for (const [copy] of choose(copies, 1, allSubsets)) out.push({ t, ev: 'cow', worker: c.server, req: id, shared: here[at], copy });
    }
  }
  // The engine's own counters (SGLang's evictable_size_ and protected_size_): an observation, which changes
  // nothing, and which the reference refuses where a variant's cache has lost count.
  const size = sys.cacheSize();
  out.push({ t, ev: 'cache_size', evictable: size.evictable * T, protected: size.protected * T });
}

/**
 * Evictions of cached blocks in the pools where some request cannot get the blocks it needs. vLLM's
 * allocation evicts only blocks on the free queue (no request holds them); SGLang's radix cache looks for
 * pages among all its nodes, and must skip those a request has locked (the spec refuses them): under a radix
 * cache held blocks are proposed too. (vLLM's connector path, which uncaches a held block, is left out: the
 * request would enter it in the cache again, and the two would make a cycle without progress.)
 */
function evictions(sys: System, config: ExploreConfig, pools: Set<number>, out: TraceEvent[]): void {
  const B = config.blocks;
  const held = config.prefixCache === 'radix';
  for (const pool of pools)
    for (let b = pool * B; b < (pool + 1) * B; b++) {
      const { value, context } = sys.blocks[b];
      if (context.key !== null && (held || value === 'cached')) out.push({ t: 0, ev: 'evict', block: b, key: context.key });
    }
}

/** The request an event concerns (for liveness: whether a request is enabled, and whether it advances). */
export function requestOf(ev: TraceEvent): string | null {
  return 'req' in ev ? ev.req : null;
}

/** Events that advance a request for good (liveness progress). */
export function isProgress(ev: TraceEvent): boolean {
  return ev.ev === 'token' || ev.ev === 'finish' || ev.ev === 'abort';
}

// --- trace v4: core-attention disaggregation

/** The query shards of an item of `tokens` positions from `from`: `cadShards` of them at most, one per position at least. */
function shardsOf(from: number, tokens: number, shards: number): [number, number][] {
  const n = Math.min(shards, tokens);
  const out: [number, number][] = [];
  for (let k = 0; k < n; k++) out.push([from + Math.floor((k * tokens) / n), from + Math.floor(((k + 1) * tokens) / n)]);
  return out;
}

/** Whether some item of the step `key` still has a shard that is not a task. */
function shardsLeft(sys: System, config: ExploreConfig, key: string, op: { reqs: number[]; tokens: number[] }): boolean {
  const made = sys.cad!.tasksOfStep(key);
  for (let i = 0; i < op.reqs.length; i++) {
    let mine = 0;
    for (const t of made) if (sys.cad!.taskInfo(t).req === op.reqs[i]) mine++;
    if (mine < Math.min(config.cadShards, op.tokens[i])) return true;
  }
  return false;
}

/**
 * The environment of the attention servers: the next shard of each item of a step in flight becomes a task
 * (shards in order, so that a task's id is its request and its count); a task is dispatched to any free buffer
 * of a live server, reading, where another shard of its request holds inputs on that server, those too or not;
 * started, ended and read back; a server with unfinished work may be lost while losses are left.
 */
function cadProposals(sys: System, config: ExploreConfig, out: TraceEvent[]): void {
  const cad = sys.cad!;
  const t = 0;
  const T = config.blockSize;
  for (const [key, op] of sys.ops) {
    if (op.kind !== 'step') continue;
    const made = cad.tasksOfStep(key);
    const w = sys.workerIndex.get(op.writer)!;
    const gpu = sys.workerGpu(w);
    op.reqs.forEach((r, i) => {
      let mine = 0;
      for (const x of made) if (cad.taskInfo(x).req === r) mine++;
      const from = sys.requests[r].context.computed;
      const shards = shardsOf(from, op.tokens[i], config.cadShards);
      if (mine >= shards.length) return;
      const [a, b] = shards[mine];
      const id = sys.requestIds[r];
      let count = 0;
      for (let x = 0; x < cad.taskIds.length; x++) if (cad.taskInfo(x).req === r) count++;
      const table = sys.tables[r].filter((blk) => sys.poolOf(blk) === gpu);
      out.push({ t, ev: 'task_create', task: `${id}.${count}`, req: id, worker: op.writer, step: '1', from: a, to: b, blocks: table.slice(0, Math.ceil(b / T)) });
    });
  }
  const servers = cad.serverList();
  let lost = 0;
  for (const s of servers) if (s.lost) lost++;
  for (let x = 0; x < cad.tasks.length; x++) {
    const task = cad.tasks[x];
    const id = cad.taskIds[x];
    switch (task.value) {
      case 'created':
        for (const s of servers) {
          if (s.lost) continue;
          // Inputs of another shard of the same request, on this server, that the task may read as well.
          const shared: number[] = [];
          for (let y = 0; y < cad.tasks.length; y++) {
            const v = cad.tasks[y].value;
            const buf = cad.tasks[y].context.buffer;
            if (y !== x && cad.taskInfo(y).req === cad.taskInfo(x).req && (v === 'dispatched' || v === 'computing') && buf >= s.first && buf < s.first + s.count) shared.push(buf - s.first);
          }
          for (let b = 0; b < s.count; b++) {
            // A free buffer, or (refused by the spec, taken by an engine that flips its ping-pong pair too
            // early) one whose result is still unread.
            const v = cad.buffers[s.first + b].value;
            if (v !== 'free' && v !== 'holdingResult') continue;
            out.push({ t, ev: 'task_dispatch', task: id, server: s.id, buffer: b });
            for (const r of shared) out.push({ t, ev: 'task_dispatch', task: id, server: s.id, buffer: b, reads: [r] });
          }
        }
        break;
      case 'dispatched':
        out.push({ t, ev: 'task_start', task: id });
        break;
      case 'computing':
        out.push({ t, ev: 'task_end', task: id });
        break;
      case 'returned':
        out.push({ t, ev: 'task_consume', task: id });
        break;
    }
  }
  if (lost < config.serverLosses)
    for (const s of servers) {
      if (s.lost) continue;
      let busy = false;
      for (let b = s.first; b < s.first + s.count; b++) if (cad.buffers[b].value !== 'free') busy = true;
      if (busy) out.push({ t, ev: 'server_lost', server: s.id });
    }
}
