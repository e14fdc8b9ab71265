// The engine seen from outside, in the spec's vocabulary: the observable state lockstep tests compare with
// the spec's machines, the per-request records behind the metrics, and the engine's own books checked
// against each other.
import type { Role } from './executors/step-executor.ts';
import { NO_OWNER } from './kv/block-pool.ts';
import type { RequestRecord } from './metrics.ts';
import type { Split } from './policy-api.ts';
import type { Rooms } from './rooms.ts';
import { SimKind } from './sim/clock.ts';
import type { Req, RequestState, Transfer, Worker, WorkerState } from './state.ts';

export interface RequestView {
  state: RequestState;
  server: string | null;
  generated: number;
  computed: number;
  /** Blocks owned, all pools. */
  blocks: number[];
}

export interface WorkerView {
  role: Role;
  epoch: number;
  share: number;
  gpu: number;
  state: WorkerState;
  /** Requests handed to it and not yet joined, in the order it will pop them. */
  fifo: string[];
  /** Requests it serves (its FIFO included). */
  load: number;
}

export interface EngineView {
  time: number;
  epoch: number;
  split: Split;
  resize: null | { epoch: number; phase: 'initialising' | 'switching'; split: Split };
  /** Per block (global id, pool p holding p·B .. p·B + B − 1): the owning (first holding) request's id, or null when free. */
  blocks: (string | null)[];
  /** State slots (trace v3) only: per slot (global id), the request whose state it holds, or null when free. */
  slots?: (string | null)[];
  /** Shared KV (trace v2) only: per block, its holders in the order they took it, and its cache key (null: not cached). */
  sharing?: { holders: string[][]; keys: (string | null)[] };
  requests: Record<string, RequestView>;
  workers: Record<string, WorkerView>;
  /** The waiting queue in pop order. */
  waiting: string[];
  inFlight: { steps: { worker: string; step: string; reqs: string[] }[]; transfers: { xfer: string; req: string }[] };
}

/** The observable state. O(blocks + requests + workers). */
export function observe(rooms: Rooms): EngineView {
  const { kv, lifecycle, workers, clock, resize, waiting, mode } = rooms;
  const reqs = lifecycle.reqs;
  const blocks: (string | null)[] = [];
  for (const p of kv.pools) for (let i = 0; i < p.size; i++) blocks.push(p.owner[i] < 0 ? null : reqs[p.owner[i]].id);
  let sharing: EngineView['sharing'];
  if (kv.sharing) {
    const holders: string[][] = [];
    const keys: (string | null)[] = [];
    for (const p of kv.pools)
      for (let i = 0; i < p.size; i++) {
        holders.push(p.holders![i].map((h) => reqs[h].id));
        keys.push(kv.prefix.keyOfBlock(p.base + i));
      }
    sharing = { holders, keys };
  }
  const requests: Record<string, RequestView> = {};
  for (const r of reqs) requests[r.id] = { state: r.state, server: r.server?.id ?? null, generated: r.generated, computed: r.computed, blocks: r.windowed === null ? r.blocks.flat() : [...r.blocks.flat(), ...r.windowed.flat()] };
  let slots: (string | null)[] | undefined;
  if (kv.slotsPerGpu > 0) {
    slots = new Array<string | null>(kv.slotsPerGpu * kv.pools.length).fill(null);
    for (const r of reqs) if (r.slot >= 0) slots[r.slot] = r.id;
  }
  const views: Record<string, WorkerView> = {};
  for (const w of workers.all) {
    const fifo = mode.fifoIsProtocol ? w.fifo.filter((r) => r.state === 'handedOff' && r.server === w).map((r) => r.id) : [];
    views[w.id] = { role: w.role, epoch: w.epoch, share: w.share, gpu: w.gpu, state: w.state, fifo, load: w.load };
  }
  const steps: EngineView['inFlight']['steps'] = [];
  for (const w of workers.all) if (w.step) steps.push({ worker: w.id, step: w.step.id, reqs: w.step.reqs.map((r) => r.id) });
  const transfers: EngineView['inFlight']['transfers'] = [];
  for (const ev of clock.pending()) {
    if (ev.kind !== SimKind.TransferEnd) continue;
    const x = ev.ref as Transfer;
    transfers.push({ xfer: x.id, req: x.req.id });
  }
  transfers.sort((a, b) => Number(a.xfer) - Number(b.xfer));
  const rs = resize.current;
  return {
    time: clock.now,
    epoch: resize.epoch,
    split: { ...resize.split },
    resize: rs ? { epoch: rs.epoch, phase: rs.phase, split: { ...rs.split } } : null,
    blocks,
    ...(sharing ? { sharing } : {}),
    ...(slots ? { slots } : {}),
    requests,
    workers: views,
    waiting: waiting.inOrder().map((r) => r.id),
    inFlight: { steps, transfers },
  };
}

export function records(reqs: readonly Req[]): RequestRecord[] {
  return reqs.map((r) => ({
    id: r.id,
    arrival: r.arrival,
    prompt: r.prompt,
    maxTokens: r.maxTokens,
    generated: r.generated,
    firstTokenAt: r.firstTokenAt,
    lastTokenAt: r.lastTokenAt,
    endAt: r.endAt,
    outcome: r.outcome,
    preemptions: r.preemptions,
  }));
}

export interface BookkeepingProblem {
  rule: string;
  message: string;
}

/**
 * The engine's books against each other, each problem named by the safety rule (the trace vocabulary) it
 * breaks in the engine's own state: a block in no table and not free is lost (BlocksAccounted), a block in
 * two tables has two owners (SingleOwner), a request served by a stopped worker is dropped
 * (ServedByLiveWorker); counts that disagree are the engine's own inconsistency (Bookkeeping).
 */
export function bookkeepingProblems(rooms: Rooms): BookkeepingProblem[] {
  const { kv, lifecycle, workers } = rooms;
  const reqs = lifecycle.reqs;
  const problems: BookkeepingProblem[] = [];
  if (kv.sharing) sharedBookkeeping(rooms, problems);
  else for (const pool of kv.pools) {
    let owned = 0;
    for (const r of reqs) {
      for (const table of tablesOf(r, pool.gpu))
        for (const b of table) {
          owned++;
          if (pool.owner[b - pool.base] !== r.idx) problems.push({ rule: 'SingleOwner', message: `block ${b} is in ${r.id}'s table but owned by #${pool.owner[b - pool.base]}` });
        }
    }
    if (owned + pool.free !== pool.size)
      problems.push({ rule: owned + pool.free < pool.size ? 'BlocksAccounted' : 'FreeListUnique', message: `pool ${pool.gpu}: ${owned} owned + ${pool.free} free ≠ ${pool.size}` });
    for (let i = 0; i < pool.size; i++) {
      const o = pool.owner[i];
      if (o !== NO_OWNER && !tablesOf(reqs[o], pool.gpu).some((t) => t.includes(pool.base + i))) problems.push({ rule: 'BlocksAccounted', message: `block ${pool.base + i} is owned by ${reqs[o].id}, not in its table` });
    }
  }
  if (kv.slotsPerGpu > 0) slotBookkeeping(rooms, problems);
  const loads = new Map<Worker, number>();
  let live = 0;
  for (const r of reqs) {
    if (!r.ended) live++;
    if (r.server) loads.set(r.server, (loads.get(r.server) ?? 0) + 1);
    if (r.server && r.server.state === 'stopped') problems.push({ rule: 'ServedByLiveWorker', message: `${r.id} is served by ${r.server.id}, which has stopped` });
  }
  for (const w of workers.all) if ((loads.get(w) ?? 0) !== w.load) problems.push({ rule: 'Bookkeeping', message: `worker ${w.id}: load ${w.load}, but it serves ${loads.get(w) ?? 0}` });
  if (live !== lifecycle.liveCount) problems.push({ rule: 'Bookkeeping', message: `live count ${lifecycle.liveCount}, but ${live} requests are live` });
  return problems;
}

/**
 * Shared KV's books: every table entry is a holder of its block and every holder has it in its table
 * (RefCountIsHolders); held + parked + free = pool size (BlocksAccounted); the cache's counters equal its
 * parked blocks and its cached held ones (CacheSizeAccounted).
 */
function sharedBookkeeping(rooms: Rooms, problems: BookkeepingProblem[]): void {
  const { kv, lifecycle } = rooms;
  const reqs = lifecycle.reqs;
  let parkedCached = 0;
  let heldCached = 0;
  for (const pool of kv.pools) {
    for (const r of reqs) {
      for (const b of r.blocks[pool.gpu]) {
        if (!pool.holders![b - pool.base].includes(r.idx)) problems.push({ rule: 'RefCountIsHolders', message: `block ${b} is in ${r.id}'s table, but ${r.id} is not among its holders` });
      }
    }
    let held = 0;
    for (let i = 0; i < pool.size; i++) {
      const hs = pool.holders![i];
      if (hs.length > 0) held++;
      for (const h of hs) if (!reqs[h].blocks[pool.gpu].includes(pool.base + i)) problems.push({ rule: 'RefCountIsHolders', message: `block ${pool.base + i} counts ${reqs[h].id} as a holder, not in its table` });
      if (kv.prefix.isCached(pool.base + i)) {
        if (hs.length > 0) heldCached++;
        else parkedCached++;
      }
    }
    if (held + pool.free !== pool.size)
      problems.push({ rule: held + pool.free < pool.size ? 'BlocksAccounted' : 'FreeListUnique', message: `pool ${pool.gpu}: ${held} held + ${pool.free} free (${pool.parked} of them parked in the prefix cache) ≠ ${pool.size}` });
  }
  if (parkedCached !== kv.prefix.evictable || heldCached !== kv.prefix.protected)
    problems.push({ rule: 'CacheSizeAccounted', message: `the prefix cache counts ${kv.prefix.evictable} evictable and ${kv.prefix.protected} protected block(s); it holds ${parkedCached} parked and ${heldCached} held` });
}

/** `r`'s block tables of pool `gpu`: the full group's, and the windowed group's with a sliding window. */
function tablesOf(r: Req, gpu: number): number[][] {
  return r.windowed === null ? [r.blocks[gpu]] : [r.blocks[gpu], r.windowed[gpu]];
}

/** State slots: each held by at most one request, and every slot either held or free, once (SlotSingleOwner). */
function slotBookkeeping(rooms: Rooms, problems: BookkeepingProblem[]): void {
  const { kv, lifecycle } = rooms;
  const seen = new Map<number, string>();
  for (const r of lifecycle.reqs) {
    if (r.slot < 0) continue;
    const other = seen.get(r.slot);
    if (other !== undefined) problems.push({ rule: 'SlotSingleOwner', message: `state slot ${r.slot} is held by ${other} and ${r.id}` });
    seen.set(r.slot, r.id);
  }
  for (let g = 0; g < kv.pools.length; g++)
    for (const s of kv.freeSlotsOf(g)) {
      if (seen.has(s)) problems.push({ rule: 'SlotSingleOwner', message: `state slot ${s} is free and held by ${seen.get(s)}` });
      seen.set(s, '(free)');
    }
  if (seen.size !== kv.slotsPerGpu * kv.pools.length) problems.push({ rule: 'BlocksAccounted', message: `${kv.slotsPerGpu * kv.pools.length - seen.size} state slot(s) are neither held nor free` });
}
