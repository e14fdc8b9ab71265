// The system: the synchronous composition of the entity machines. A trace event is allowed exactly when
// every machine it involves allows its share of it (the request, the blocks, the workers, the allocator,
// the pool, the partition); then all of them move at once. The composition also keeps the bookkeeping no
// single machine owns: each request's block table, and the steps and transfers in flight with the blocks
// they hold.
import { bufferMachine, bufferParts, CadBook, taskMachine, taskParts, type BufferContext, type TaskContext } from './cad.ts';
import { allocatorMachine, allocatorParts, blockMachine, blockParts, poolMachine, poolParts } from './kv.ts';
import { compileMachine, fireOrRefuse, type CompiledMachine, type Refusal, type Snapshot } from './machine-kit.ts';
import { partitionMachine, partitionParts, workerMachine, workerParts, type WorkerContext } from './partition.ts';
import { LIVE_REQUEST_STATES, requestMachine, requestParts, type RequestContext } from './request.ts';
import { slotMachine, slotParts, type SlotContext } from './slot.ts';
import type { BatchItem, TraceEvent, TraceHeader } from './trace-format.ts';
import type { AllocatorContext, BlockContext, PoolContext } from './kv.ts';
import type { PartitionContext } from './partition.ts';
import type { InvariantName } from './invariants.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
type AnyCompiled = CompiledMachine<any, any>;

/** The compiled machines of the reference spec. */
export const MACHINES = {
  request: compileMachine(requestMachine, requestParts),
  block: compileMachine(blockMachine, blockParts),
  pool: compileMachine(poolMachine, poolParts),
  allocator: compileMachine(allocatorMachine, allocatorParts),
  worker: compileMachine(workerMachine, workerParts),
  partition: compileMachine(partitionMachine, partitionParts),
  slot: compileMachine(slotMachine, slotParts),
  task: compileMachine(taskMachine, taskParts),
  buffer: compileMachine(bufferMachine, bufferParts),
} satisfies Record<string, AnyCompiled>;

export type MachineName = keyof typeof MACHINES;

/**
 * Machine events and states that only trace v2 (shared KV) reaches: a v1 run never takes these transitions,
 * so coverage of a v1 run leaves them out.
 */
export const V2_ONLY = { events: new Set(['hit', 'insert', 'evict', 'cache_hit', 'fork', 'cow_from']), states: new Set(['cached']) };

/** Machines and events only a v3 header with state slots reaches. */
export const SLOTS_ONLY = { events: new Set(['slot_alloc', 'slot_free']), machines: new Set(['slot']) };

/** Machines and events only a v4 header with attention servers reaches (core-attention disaggregation). */
export const CAD_ONLY = { events: new Set(['task_create', 'task_dispatch', 'task_start', 'task_end', 'task_consume', 'server_lost']), machines: new Set(['task', 'buffer']) };

/**
 * Trace v3 events that move no machine: `tick` (time passes) and `idle` (the engine says it is at rest). The
 * checker judges release deadlines and, at `idle`, the at-rest rules; an explorer need not propose them.
 */
export const CLOCK_EVENTS: ReadonlySet<string> = new Set(['tick', 'idle']);

/** The context a machine definition starts from, computed by the definition's own `context` factory. */
function initialContext<C>(m: AnyCompiled, input: unknown): C {
  const ctx = (m.machine.config as { context?: unknown }).context;
  return (typeof ctx === 'function' ? ctx({ input }) : structuredClone(ctx)) as C;
}

/** A step or transfer in flight and the blocks it holds. */
export interface InFlightOp {
  label: string;
  kind: 'step' | 'transfer';
  /** The worker the op writes for: a step's worker, a transfer's destination. */
  writer: string;
  reqs: number[];
  tokens: number[];
  /** The blocks it holds, per request (index aligned with `reqs`): a copy of the block table at its start. */
  held: number[][];
  /** Trace v3: per request, the draft positions at the item's end (0: none). */
  drafts?: number[];
}

export interface SystemOptions {
  /**
   * Forget what is no longer needed of a request that has ended and released everything (its counters, its
   * empty table), keeping its id and end state: memory stays flat on a long trace. For checkers that only
   * judge; a lockstep run that compares request counters with an engine keeps them.
   */
  retireEnded?: boolean;
  /** Replace machines (spec variants). */
  machines?: Partial<Record<MachineName, AnyCompiled>>;
  /** Whether allocation takes the pool lock (default true; false is the lockless variant of bug zoo Z13). */
  locking?: boolean;
  /**
   * Trace v2: whether a step that writes a block others hold is refused until `cow` gives the writer its own
   * copy (default true; false is the explorer's variant of an engine that writes shared blocks in place).
   */
  copyOnWrite?: boolean;
  /**
   * Trace v4: whether the composition refuses a task's in-place end over inputs another task reads, and a
   * step's end before its tasks' results are read (default true; false are the explorer's variants of an
   * engine that skips either check).
   */
  cadChecks?: { inPlace?: boolean; stepWaits?: boolean };
}

interface Move {
  kind: MachineName;
  index: number;
  event: { type: string };
}

const NOTHING: number[] = [];
const NO_KEYS: (string | undefined)[] = [];
const NO_OPS: string[] = [];
const ENDED_CONTEXT: RequestContext = Object.freeze({
  prompt: 0,
  maxTokens: 0,
  generated: 0,
  computed: 0,
  owned: [],
  server: null,
  inFlight: 0,
  tokenOwed: false,
  extraOwed: 0,
  awaitingKv: false,
  deferredFree: false,
  slots: 0,
}) as RequestContext;
const RETIRED = {
  finished: { value: 'finished', context: ENDED_CONTEXT } as Snapshot<RequestContext>,
  aborted: { value: 'aborted', context: ENDED_CONTEXT } as Snapshot<RequestContext>,
};

/** Stamps of attempted events, unique across systems (copies share the scratch arrays the stamps guard). */
let moveStamp = 0;
/** Per request index, the slot of its move in the event being attempted (valid where the stamp matches). */
let requestSlot = new Int32Array(1024);
let requestStamp = new Int32Array(1024);
function growRequestSlots(n: number) {
  const size = Math.max(n, requestStamp.length * 2);
  const slot = new Int32Array(size);
  const st = new Int32Array(size);
  slot.set(requestSlot);
  st.set(requestStamp);
  requestSlot = slot;
  requestStamp = st;
}

/** The next snapshot of each machine an event moves. */
export type PendingMoves = { kind: MachineName; index: number; snap: Snapshot<unknown> }[];

const KIND_CODE: Record<MachineName, number> = { partition: 0, pool: 1, allocator: 2, worker: 3, request: 4, block: 5, slot: 6, task: 7, buffer: 8 };
/** Kinds per index in a move's map key (KIND_CODE + index · KINDS). */
const KINDS = 16;

export class System {
  readonly header: TraceHeader;
  readonly machines: Record<MachineName, AnyCompiled>;
  requests: Snapshot<RequestContext>[];
  /** Request ids and their index; append-only, shared between a state and its copies until one appends. */
  requestIds: string[];
  requestIndex: Map<string, number>;
  /** Each request's blocks (its block table) in allocation order, mirroring the blocks' owners. */
  tables: number[][];
  /** Trace v2: each request's cache keys by block position (from its arrive, extended by its inserts). */
  keys: (string | undefined)[][];
  blocks: Snapshot<BlockContext>[];
  /** Per block: how many steps or transfers in flight hold it. */
  holds: Int32Array;
  workers: Snapshot<WorkerContext>[];
  workerIds: string[];
  workerIndex: Map<string, number>;
  allocators: Snapshot<AllocatorContext>[];
  pools: Snapshot<PoolContext>[];
  partition: Snapshot<PartitionContext>[];
  /** Trace v3: state slots, every GPU's (pool p holds p·S .. p·S + S − 1); none without the header's stateSlots. */
  slots: Snapshot<SlotContext>[];
  /** Trace v4: core-attention tasks and the attention servers' buffers; null without the header's attentionServers. */
  cad: CadBook | null = null;
  ops: Map<string, InFlightOp>;
  reqOps: string[][];
  liveCount: number;
  /** Trace v2: cached blocks no request holds, and cached blocks some request holds (kept as blocks move). */
  cachedFree = 0;
  cachedHeld = 0;
  /**
   * Trace v3, where the trace names token ids: per request, its output's token ids so far (-1 where a token
   * event gave none), and the draft ids of its verify in flight or just ended (the tokens still to match).
   */
  outputIds = new Map<number, number[]>();
  draftIds = new Map<number, number[]>();
  /**
   * Trace v3 with layer groups: per block, the index of the group it was allocated for (-1 while free), and
   * per request, how many of its first blocks of each group it has freed while live (out of its window), in
   * each pool (index pool · groups + group: a disaggregated request's prefill side drops its own).
   */
  blockGroup: Int32Array | null = null;
  dropped = new Map<number, number[]>();
  /**
   * Whether the free being applied is a live request's free of blocks outside its window (its first ones),
   * or of its last blocks, past its computed and accepted positions (rolled-back drafts, SGLang).
   */
  private partialFree = false;
  private tailFree = false;
  time: number;
  /** When set, each applied event records the machine transitions it took (`machine:state:event`), for coverage. */
  fired: string[] | null = null;
  /** Entities moved by the last applied event, for incremental invariant checks. */
  touched: { kind: MachineName; index: number }[] = [];
  private idsShared = false;
  private readonly retireEnded: boolean;
  private readonly copyOnWrite: boolean;
  private readonly stepWaits: boolean;
  private moves: Move[] = [];
  /** Per block, the slot of its move in the event being attempted (valid where the stamp matches). */
  private blockSlot: Int32Array;
  private blockStamp: Int32Array;

  constructor(header: TraceHeader, options: SystemOptions = {}, from?: System) {
    this.header = header;
    if (from) {
      // A copy for the explorer: snapshots are immutable, so containers are copied and snapshots shared.
      this.retireEnded = from.retireEnded;
      this.copyOnWrite = from.copyOnWrite;
      this.stepWaits = from.stepWaits;
      this.machines = from.machines;
      this.requests = from.requests.slice();
      this.requestIds = from.requestIds;
      this.requestIndex = from.requestIndex;
      this.workerIds = from.workerIds;
      this.workerIndex = from.workerIndex;
      this.idsShared = from.idsShared = true;
      this.tables = from.tables.map((t) => t.slice());
      this.keys = from.keys.map((k) => k.slice());
      this.blocks = from.blocks.slice();
      this.holds = from.holds.slice();
      this.workers = from.workers.slice();
      this.allocators = from.allocators.slice();
      this.pools = from.pools.slice();
      this.partition = from.partition.slice();
      this.slots = from.slots.slice();
      this.cad = from.cad?.clone() ?? null;
      this.ops = new Map(from.ops);
      this.reqOps = from.reqOps.map((o) => o.slice());
      this.liveCount = from.liveCount;
      this.cachedFree = from.cachedFree;
      this.cachedHeld = from.cachedHeld;
      for (const [r, ids] of from.outputIds) this.outputIds.set(r, ids.slice());
      for (const [r, ids] of from.draftIds) this.draftIds.set(r, ids.slice());
      this.blockGroup = from.blockGroup?.slice() ?? null;
      for (const [r, d] of from.dropped) this.dropped.set(r, d.slice());
      // An event attempted on the origin may be committed into this copy (the explorer's successors).
      this.partialFree = from.partialFree;
      this.tailFree = from.tailFree;
      this.time = from.time;
      this.blockSlot = from.blockSlot;
      this.blockStamp = from.blockStamp;
      return;
    }
    this.retireEnded = options.retireEnded === true;
    this.copyOnWrite = options.copyOnWrite !== false;
    this.stepWaits = options.cadChecks?.stepWaits !== false;
    this.machines = { ...MACHINES, ...options.machines };
    this.requests = [];
    this.requestIds = [];
    this.requestIndex = new Map();
    this.tables = [];
    this.keys = [];
    this.workers = [];
    this.workerIds = [];
    this.workerIndex = new Map();
    this.allocators = [];
    this.pools = [];
    this.ops = new Map();
    this.reqOps = [];
    this.liveCount = 0;
    this.time = 0;
    const total = header.blocks * header.gpus;
    const blockCtx = initialContext<BlockContext>(this.machines.block, {});
    const blockSnap: Snapshot<BlockContext> = { value: this.machines.block.initial, context: blockCtx };
    this.blocks = new Array(total).fill(blockSnap);
    this.holds = new Int32Array(total);
    this.blockSlot = new Int32Array(total);
    this.blockStamp = new Int32Array(total);
    if (header.groups) this.blockGroup = new Int32Array(total).fill(-1);
    const slotSnap: Snapshot<SlotContext> = { value: this.machines.slot.initial, context: initialContext<SlotContext>(this.machines.slot, {}) };
    this.slots = new Array((header.stateSlots ?? 0) * header.gpus).fill(slotSnap);
    if (header.attentionServers) {
      const taskSnap: Snapshot<TaskContext> = { value: this.machines.task.initial, context: initialContext<TaskContext>(this.machines.task, {}) };
      const bufferSnap: Snapshot<BufferContext> = { value: this.machines.buffer.initial, context: initialContext<BufferContext>(this.machines.buffer, {}) };
      this.cad = new CadBook(header, taskSnap, bufferSnap, undefined, options.cadChecks?.inPlace !== false);
    }
    const locking = options.locking ?? true;
    for (let g = 0; g < header.gpus; g++) this.pools.push({ value: this.machines.pool.initial, context: initialContext(this.machines.pool, { locking }) });
    this.partition = [
      {
        value: this.machines.partition.initial,
        context: initialContext(this.machines.partition, { prefill: header.split.prefill, decode: header.split.decode, rule: header.shareRule, workers: header.workers.length }),
      },
    ];
    for (const w of header.workers) this.addWorker(w.id, { role: w.role, epoch: 0, share: w.share, gpu: w.gpu }, 'idle');
  }

  /** Before appending an id: a copy shares its id lists with its origin until then. */
  private ownIds() {
    if (!this.idsShared) return;
    this.requestIds = this.requestIds.slice();
    this.requestIndex = new Map(this.requestIndex);
    this.workerIds = this.workerIds.slice();
    this.workerIndex = new Map(this.workerIndex);
    this.idsShared = false;
  }

  private addWorker(id: string, input: { role: WorkerContext['role']; epoch: number; share: number; gpu: number }, value: string) {
    this.ownIds();
    this.workerIndex.set(id, this.workers.length);
    this.workerIds.push(id);
    this.workers.push({ value, context: initialContext(this.machines.worker, input) });
    this.allocators.push({
      value: this.machines.allocator.initial,
      context: initialContext(this.machines.allocator, { role: input.role, decodeOwned: this.header.allocator === 'decode-owned' }),
    });
  }

  isLive(r: number): boolean {
    return LIVE_REQUEST_STATES.has(this.requests[r].value);
  }

  opsOf(r: number): string[] {
    return this.reqOps[r];
  }

  poolOf(block: number): number {
    return Math.floor(block / this.header.blocks);
  }

  /** The GPU of worker `w`. */
  workerGpu(w: number): number {
    return this.workers[w].context.gpu;
  }

  holdersOf(b: number): string {
    const labels = [...this.ops.values()].filter((op) => op.held.some((blocks) => blocks.includes(b))).map((op) => op.label);
    if (this.cad) labels.push(...this.cad.holdersOf(b));
    return labels.length ? labels.join(', ') : `${this.holds[b]} op(s)`;
  }

  /**
   * Trace v3: where a step names the ids it writes, the first position whose id is not the output's token
   * there, in words; null when every output position it writes holds the output's token (prompt ids and
   * tokens given without ids cannot be checked).
   */
  private writesOtherTokens(r: number, item: BatchItem): string | null {
    const out = this.outputIds.get(r);
    if (out === undefined) return null;
    const ctx = this.requests[r].context;
    const from = item.from ?? ctx.computed;
    const written = item.tokens - (item.draft ?? 0);
    for (let k = 0; k < written; k++) {
      const j = from + k - ctx.prompt;
      if (j < 0 || j >= out.length || out[j] < 0) continue;
      if (item.ids![k] !== out[j]) return `request ${this.requestIds[r]}'s step writes token ${item.ids![k]} at position ${from + k}, but its output holds token ${out[j]} there (output index ${j}): the cache would hold a token the output lacks`;
    }
    return null;
  }

  /** The index of layer group `id` (the first when absent), or -1 when the header does not declare it. */
  private groupOf(id: string | undefined): number {
    if (id === undefined) return 0;
    const groups = this.header.groups;
    if (!groups) return -1;
    for (let i = 0; i < groups.length; i++) if (groups[i].id === id) return i;
    return -1;
  }

  /** How many of request `r`'s first blocks of group `g` in pool `pool` it has freed while live. */
  private droppedIn(r: number, g: number, pool: number): number {
    return this.dropped.get(r)?.[pool * this.header.groups!.length + g] ?? 0;
  }

  /** Request `r`'s blocks of group `g` in pool `pool`, in logical order (after the ones it freed). */
  private groupTable(r: number, g: number, pool: number): number[] {
    return this.tables[r].filter((b) => this.blockGroup![b] === g && this.poolOf(b) === pool);
  }

  /**
   * Trace v3: why live request `r` may not free `blocks` of group `g` yet, in words, or null when it may:
   * they are its first blocks of the group, and every position they hold is outside the group's window as
   * of its computed and accepted positions (vLLM's SlidingWindowManager.remove_skipped_blocks).
   */
  private neededStill(r: number, blocks: readonly number[], g: number, pool: number): string | null {
    const group = this.header.groups![g];
    const id = this.requestIds[r];
    if (group.window === undefined) return `request ${id} is live and group ${group.id} has no window: every position it holds is still read`;
    const table = this.groupTable(r, g, pool);
    for (const b of blocks) {
      const at = table.indexOf(b);
      if (at < 0) return `block ${b} is not one of ${id}'s blocks of group ${group.id}`;
      if (at >= blocks.length) return `block ${b} is not among ${id}'s first blocks of group ${group.id}: a window frees the oldest positions first`;
    }
    const T = this.header.blockSize;
    const before = this.droppedIn(r, g, pool);
    const computed = this.requests[r].context.computed;
    const end = (before + blocks.length) * T;
    const firstNeeded = Math.max(0, computed - group.window + 1);
    if (end > firstNeeded)
      return `request ${id} has ${computed} position(s) computed, so group ${group.id} (window ${group.window}) still reads positions from ${firstNeeded}; the free would drop positions up to ${end - 1}`;
    return null;
  }

  /**
   * Trace v3: whether live request `r` may free `blocks` of group `g` in pool `pool` as its last blocks,
   * every position they hold past its computed and accepted ones (blocks of rolled-back drafts, which SGLang
   * frees after a verify; or allocated ahead and not written yet), with no step or transfer of it in flight.
   */
  private pastAccepted(r: number, blocks: readonly number[], g: number, pool: number): boolean {
    const ctx = this.requests[r].context;
    if (ctx.inFlight > 0) return false;
    const table = this.blockGroup !== null ? this.groupTable(r, g, pool) : this.tables[r].filter((b) => this.poolOf(b) === pool);
    const start = table.length - blocks.length;
    if (start < 0) return false;
    for (const b of blocks) if (table.indexOf(b) < start) return false;
    const before = this.blockGroup !== null ? this.droppedIn(r, g, pool) : 0;
    return (before + start) * this.header.blockSize >= ctx.computed;
  }

  /** Trace v3 with groups: why a step of `item` is not covered by its request's blocks in some group, or null. */
  private groupShort(r: number, item: BatchItem, pool: number): string | null {
    const T = this.header.blockSize;
    const from = item.from ?? this.requests[r].context.computed;
    const need = Math.ceil((from + item.tokens) / T);
    const groups = this.header.groups!;
    for (let g = 0; g < groups.length; g++) {
      const have = this.droppedIn(r, g, pool) + this.groupTable(r, g, pool).length;
      if (have < need) return `request ${this.requestIds[r]}'s step writes positions up to ${from + item.tokens - 1}, which need ${need} block(s) in layer group ${groups[g].id}; it has ${have}`;
    }
    return null;
  }

  /** A copy that can move on its own (the explorer's successor states). */
  clone(): System {
    return new System(this.header, {}, this);
  }

  private entities(kind: MachineName): Snapshot<unknown>[] {
    switch (kind) {
      case 'request':
        return this.requests;
      case 'block':
        return this.blocks;
      case 'worker':
        return this.workers;
      case 'allocator':
        return this.allocators;
      case 'pool':
        return this.pools;
      case 'partition':
        return this.partition;
      case 'slot':
        return this.slots;
      case 'task':
        return this.cad!.tasks;
      case 'buffer':
        return this.cad!.buffers;
    }
  }

  private label(kind: MachineName, index: number): string {
    switch (kind) {
      case 'request':
        return `request ${this.requestIds[index]}`;
      case 'block':
        return `block ${index}`;
      case 'worker':
        return `worker ${this.workerIds[index]}`;
      case 'allocator':
        return `allocator of ${this.workerIds[index]}`;
      case 'pool':
        return `pool ${index}`;
      case 'partition':
        return 'partition';
      case 'slot':
        return `state slot ${index}`;
      case 'task':
      case 'buffer':
        return this.cad!.label(kind, index);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Resolving ids: an unknown id is a refusal under KnownIds.

  private unknown(event: string, message: string): Refusal {
    return this.refuse(event, 'KnownIds', message);
  }

  /** A refusal by the composition itself (a fact no single machine holds). */
  private refuse(event: string, protects: InvariantName, message: string): Refusal {
    return { machine: 'system', state: '-', event, protects, message };
  }

  private req(ev: TraceEvent, id: string): number | Refusal {
    const r = this.requestIndex.get(id);
    return r === undefined ? this.unknown(ev.ev, `request ${id} has not arrived`) : r;
  }

  private worker(ev: TraceEvent, id: string): number | Refusal {
    const w = this.workerIndex.get(id);
    return w === undefined ? this.unknown(ev.ev, `worker ${id} is not declared in the header and has not started`) : w;
  }

  private checkBlocks(ev: TraceEvent, blocks: number[]): Refusal | null {
    for (const b of blocks) if (b >= this.blocks.length) return this.unknown(ev.ev, `block ${b} does not exist (${this.header.gpus} pool(s) of ${this.header.blocks} blocks)`);
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // Planning: which machines an event involves, and the facts each needs.

  private add(kind: MachineName, index: number, event: { type: string }): void {
    this.moves.push({ kind, index, event });
  }

  private plan(ev: TraceEvent): Move[] | Refusal {
    const moves = this.moves;
    moves.length = 0;
    const T = this.header.blockSize;
    switch (ev.ev) {
      case 'arrive': {
        if (this.requestIndex.has(ev.req)) return this.unknown(ev.ev, `request ${ev.req} already arrived; request ids are not reused`);
        return moves;
      }
      case 'schedule': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        this.add('request', r, { type: 'schedule', worker: ev.worker, role: this.workers[w].context.role } as never);
        this.add('worker', w, { type: 'schedule' });
        return moves;
      }
      case 'alloc':
      case 'alloc_take': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        const bad = this.checkBlocks(ev, ev.blocks);
        if (bad) return bad;
        if (ev.ev === 'alloc' && this.groupOf(ev.group) < 0) return this.unknown(ev.ev, `layer group ${ev.group} is not among the header's groups (${(this.header.groups ?? []).map((g) => g.id).join(', ') || 'none declared'})`);
        const perPool = new Map<number, number>();
        for (const b of ev.blocks) perPool.set(this.poolOf(b), (perPool.get(this.poolOf(b)) ?? 0) + 1);
        if (ev.ev === 'alloc') {
          this.add('allocator', w, { type: 'alloc', worker: ev.worker } as never);
          for (const p of perPool.keys()) this.add('pool', p, { type: 'alloc', worker: ev.worker } as never);
          for (const [p, count] of perPool) this.add('request', r, { type: 'alloc', pool: p, count } as never);
          // One machine event per pool, shared by its blocks (an allocation can name hundreds).
          const byPool = new Map<number, object>();
          for (const b of ev.blocks) {
            const p = this.poolOf(b);
            let e = byPool.get(p);
            if (!e) byPool.set(p, (e = { type: 'alloc', req: ev.req, version: this.pools[p].context.version + 1 }));
            this.add('block', b, e as never);
          }
        } else {
          const gpu = this.workers[w].context.gpu;
          for (const p of perPool.keys()) if (p !== gpu) return this.unknown(ev.ev, `worker ${ev.worker} allocates from pool ${gpu}; block(s) of pool ${p} are not there`);
          this.add('allocator', w, { type: 'alloc_take', worker: ev.worker, blocks: ev.blocks } as never);
          this.add('pool', gpu, { type: 'alloc_take', worker: ev.worker } as never);
          this.add('request', r, { type: 'alloc_take', pool: gpu, count: ev.blocks.length } as never);
          const { seen, taken } = this.allocators[w].context;
          for (const b of ev.blocks) this.add('block', b, { type: 'alloc_take', req: ev.req, seen, mine: taken.includes(b) } as never);
        }
        return moves;
      }
      case 'alloc_query':
      case 'alloc_commit': {
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        const gpu = this.workers[w].context.gpu;
        const pool = this.pools[gpu].context;
        if (ev.ev === 'alloc_query') {
          this.add('allocator', w, { type: 'alloc_query', worker: ev.worker, version: pool.version } as never);
          this.add('pool', gpu, { type: 'alloc_query', worker: ev.worker } as never);
        } else {
          this.add('allocator', w, { type: 'alloc_commit', worker: ev.worker } as never);
          this.add('pool', gpu, { type: 'alloc_commit', worker: ev.worker } as never);
          const commit = { type: 'alloc_commit', version: pool.version + 1 };
          for (const b of this.allocators[w].context.taken) this.add('block', b, commit as never);
        }
        return moves;
      }
      case 'cache_hit': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const bad = this.checkBlocks(ev, ev.blocks);
        if (bad) return bad;
        const server = this.serverGpu(r);
        for (let i = 0; i < ev.blocks.length; i++) {
          const b = ev.blocks[i];
          if (server !== null && this.poolOf(b) !== server) return this.unknown(ev.ev, `block ${b} is in pool ${this.poolOf(b)}; request ${ev.req} is served from pool ${server}`);
          this.add('block', b, { type: 'hit', req: ev.req, key: this.keys[r][i] ?? null } as never);
        }
        this.add('request', r, { type: 'cache_hit', pool: server ?? 0, count: ev.blocks.length, tokens: ev.tokens, blockSize: T, keyed: this.keys[r].length } as never);
        return moves;
      }
      case 'cache_insert': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const bad = this.checkBlocks(ev, [ev.block]);
        if (bad) return bad;
        const at = this.tables[r].indexOf(ev.block);
        const expected = at < 0 ? undefined : this.keys[r][at];
        if (expected !== undefined && expected !== ev.key)
          return this.refuse(ev.ev, 'CacheCoherent', `block ${ev.block} is block ${at} of ${ev.req}, whose key there is ${expected}, not ${ev.key}: the entry would map a key to other contents`);
        if (at >= 0 && (at + 1) * T > this.requests[r].context.computed + this.inFlightTokens(r))
          return this.refuse(ev.ev, 'CacheCoherent', `block ${ev.block} (block ${at} of ${ev.req}) is not full: positions up to ${(at + 1) * T - 1} are neither computed nor being computed, so its key would describe contents it does not hold`);
        this.add('block', ev.block, { type: 'insert', req: ev.req, key: ev.key } as never);
        return moves;
      }
      case 'evict': {
        const bad = this.checkBlocks(ev, [ev.block]);
        if (bad) return bad;
        this.add('block', ev.block, { type: 'evict', key: ev.key ?? null, radix: this.header.prefixCache === 'radix' } as never);
        return moves;
      }
      case 'fork': {
        const r = this.req(ev, ev.parent);
        if (typeof r !== 'number') return r;
        if (this.requestIndex.has(ev.child)) return this.unknown(ev.ev, `request ${ev.child} already exists; a fork's child is a new request`);
        const server = this.requests[r].context.server;
        if (server === null) return this.unknown(ev.ev, `request ${ev.parent} is served by no worker; only a decoding request is forked`);
        this.add('request', r, { type: 'fork' });
        this.add('worker', this.workerIndex.get(server)!, { type: 'fork', req: ev.child } as never);
        for (const b of this.tables[r]) this.add('block', b, { type: 'fork', req: ev.child } as never);
        return moves;
      }
      case 'cow': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        const bad = this.checkBlocks(ev, [ev.shared, ev.copy]);
        if (bad) return bad;
        if (this.poolOf(ev.copy) !== this.poolOf(ev.shared)) return this.unknown(ev.ev, `the copy, block ${ev.copy}, is in pool ${this.poolOf(ev.copy)}, not in the shared block's pool ${this.poolOf(ev.shared)}`);
        // The copy is an allocation like any other (the pool's protocol), then the reference moves to it.
        const p = this.poolOf(ev.copy);
        this.add('allocator', w, { type: 'alloc', worker: ev.worker } as never);
        this.add('pool', p, { type: 'alloc', worker: ev.worker } as never);
        this.add('block', ev.copy, { type: 'alloc', req: ev.req, version: this.pools[p].context.version + 1 } as never);
        this.add('block', ev.shared, { type: 'cow_from', req: ev.req } as never);
        return moves;
      }
      case 'cache_size': {
        const T = this.header.blockSize;
        const { evictable, protected: held } = this.cacheSize();
        if (ev.evictable !== evictable * T || ev.protected !== held * T)
          return this.refuse(ev.ev, 'CacheSizeAccounted', `the engine counts ${ev.evictable} evictable and ${ev.protected} protected token(s); its cache holds ${evictable * T} evictable (${evictable} cached block(s) no request holds) and ${held * T} protected (${held} held by requests)`);
        return moves;
      }
      case 'step_begin': {
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        if (this.ops.has(stepKey(ev.worker, ev.step))) return this.unknown(ev.ev, `step ${ev.step} of ${ev.worker} is already in flight`);
        const { role, gpu } = this.workers[w].context;
        this.add('worker', w, { type: 'step_begin' });
        const seen = new Set<string>();
        for (const item of ev.batch) {
          if (seen.has(item.req)) return this.unknown(ev.ev, `request ${item.req} appears twice in the batch`);
          seen.add(item.req);
          const r = this.req(ev, item.req);
          if (typeof r !== 'number') return r;
          if (this.header.version !== 1 && this.copyOnWrite) {
            const shared = this.sharedBlockWritten(r, item.tokens, gpu);
            if (shared !== null)
              return this.refuse(ev.ev, 'WritesUnshared', `request ${item.req}'s step writes block ${shared}, which ${this.blocks[shared].context.owners.filter((o) => o !== item.req).join(', ')} also hold(s): a shared block is read-only (copy it first: cow)`);
          }
          if (item.ids !== undefined) {
            const wrong = this.writesOtherTokens(r, item);
            if (wrong) return this.refuse(ev.ev, 'KvMatchesOutput', wrong);
          }
          if (this.blockGroup !== null) {
            const short = this.groupShort(r, item, gpu);
            if (short) return this.refuse(ev.ev, 'SingleWriter', short);
          }
          if (this.slots.length > 0 && this.requests[r].context.slots === 0)
            return this.refuse(ev.ev, 'StepHasState', `request ${item.req} has no state slot: a hybrid model's step advances its recurrent state, which must live in a slot it owns (slot_alloc first)`);
          this.add('request', r, { type: 'step_begin', worker: ev.worker, role, tokens: item.tokens, pool: gpu, blockSize: T, from: item.from ?? null, draft: item.draft ?? 0 } as never);
        }
        return moves;
      }
      case 'step_end': {
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        const op = this.ops.get(stepKey(ev.worker, ev.step));
        if (!op) return this.unknown(ev.ev, `step ${ev.step} of ${ev.worker} is not in flight`);
        const open = this.stepWaits ? this.cad?.openTask(stepKey(ev.worker, ev.step)) : null;
        if (open) return this.refuse(ev.ev, 'StepWaitsForTasks', `step ${ev.step} of ${ev.worker} cannot end: ${open}`);
        this.add('worker', w, { type: 'step_end' });
        const accepted = ev.accepted;
        for (let i = 0; i < op.reqs.length; i++) {
          const draft = op.drafts?.[i] ?? 0;
          const id = this.requestIds[op.reqs[i]];
          const a = accepted?.[id];
          if (draft > 0 && a === undefined) return this.refuse(ev.ev, 'AcceptIsPrefix', `request ${id}'s item verified ${draft} draft(s), but the step's end does not say how many were accepted (accepted.${id})`);
          if (draft === 0 && a !== undefined) return this.refuse(ev.ev, 'AcceptIsPrefix', `request ${id}'s item verified no drafts, but the step's end accepts ${a}`);
          if (a !== undefined && a > draft) return this.refuse(ev.ev, 'AcceptIsPrefix', `request ${id} accepts ${a} draft(s) of the ${draft} its item verified`);
          this.add('request', op.reqs[i], { type: 'step_end', tokens: op.tokens[i], draft, accepted: a ?? 0 } as never);
        }
        if (accepted) for (const id in accepted) if (!op.reqs.some((r) => this.requestIds[r] === id)) return this.refuse(ev.ev, 'AcceptIsPrefix', `the step's end accepts drafts of ${id}, which is not in the step`);
        return moves;
      }
      case 'token': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const drafts = this.draftIds.get(r);
        if (drafts !== undefined && drafts.length > 0 && ev.token !== undefined && this.requests[r].context.extraOwed > 0 && ev.token !== drafts[0])
          return this.refuse(ev.ev, 'AcceptIsPrefix', `token ${ev.index} of ${ev.req} is ${ev.token}, but the verify accepted its draft ${drafts[0]} there: an accepted token is the draft itself`);
        this.add('request', r, { type: 'token', index: ev.index } as never);
        return moves;
      }
      case 'handoff':
      case 'migrate': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const from = this.worker(ev, ev.from);
        if (typeof from !== 'number') return from;
        const to = this.worker(ev, ev.to);
        if (typeof to !== 'number') return to;
        const f = this.workers[from].context;
        const t = this.workers[to].context;
        // A handoff queues on the FIFO within one GPU; a migration keeps the request's place if it had one.
        const queued = ev.ev === 'handoff' ? f.gpu === t.gpu : f.fifo.includes(ev.req);
        if (ev.ev === 'handoff') {
          this.add('request', r, { type: 'handoff', from: ev.from, to: ev.to, toRole: t.role, crossGpu: f.gpu !== t.gpu } as never);
        } else {
          this.add('partition', 0, { type: 'migrate', fromEpoch: f.epoch, toEpoch: t.epoch, fromRole: f.role, toRole: t.role } as never);
          this.add('request', r, { type: 'migrate', from: ev.from, to: ev.to } as never);
        }
        this.add('worker', from, { type: ev.ev, side: 'from', req: ev.req, queued } as never);
        this.add('worker', to, { type: ev.ev, side: 'to', req: ev.req, queued } as never);
        return moves;
      }
      case 'join':
      case 'preempt': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        this.add('request', r, { type: ev.ev, worker: ev.worker, role: this.workers[w].context.role, anyPhase: this.header.version >= 3 } as never);
        this.add('worker', w, { type: ev.ev, req: ev.req } as never);
        return moves;
      }
      case 'transfer_begin': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const from = this.worker(ev, ev.from);
        if (typeof from !== 'number') return from;
        const to = this.worker(ev, ev.to);
        if (typeof to !== 'number') return to;
        if (this.ops.has(transferKey(ev.xfer))) return this.unknown(ev.ev, `transfer ${ev.xfer} is already in flight`);
        this.add('request', r, { type: 'transfer_begin', to: ev.to } as never);
        return moves;
      }
      case 'transfer_end': {
        const op = this.ops.get(transferKey(ev.xfer));
        if (!op) return this.unknown(ev.ev, `transfer ${ev.xfer} is not in flight`);
        this.add('request', op.reqs[0], { type: 'transfer_end', ok: ev.outcome !== 'cancelled' } as never);
        return moves;
      }
      case 'free': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        const bad = this.checkBlocks(ev, ev.blocks);
        if (bad) return bad;
        const ctx = this.requests[r].context;
        const serverPool = this.serverGpu(r) ?? -1;
        if (this.groupOf(ev.group) < 0) return this.unknown(ev.ev, `layer group ${ev.group} is not among the header's groups (${(this.header.groups ?? []).map((g) => g.id).join(', ') || 'none declared'})`);
        let unneeded = false;
        this.partialFree = this.tailFree = false;
        if (this.header.version >= 3 && this.isLive(r) && this.requests[r].value !== 'retracting' && ev.blocks.some((b) => this.poolOf(b) === serverPool)) {
          const g = this.groupOf(ev.group);
          if (this.pastAccepted(r, ev.blocks, g, serverPool)) unneeded = this.tailFree = true;
          else if (this.blockGroup !== null) {
            const why = this.neededStill(r, ev.blocks, g, serverPool);
            if (why) return this.refuse(ev.ev, 'PartialFreeOnlyUnneeded', why);
            unneeded = this.partialFree = true;
          }
        }
        const perPool = new Map<number, number>();
        for (const b of ev.blocks) perPool.set(this.poolOf(b), (perPool.get(this.poolOf(b)) ?? 0) + 1);
        for (const p of perPool.keys()) this.add('pool', p, { type: 'free' });
        // The blocks first: a refused free then names the step or transfer that still holds the block.
        const unheld = { type: 'free', req: ev.req, held: 0, holders: '' };
        for (const b of ev.blocks) this.add('block', b, (this.holds[b] ? { type: 'free', req: ev.req, held: this.holds[b], holders: this.holdersOf(b) } : unheld) as never);
        let remaining = ctx.owned.reduce((a, n) => a + n, 0) + ctx.slots;
        for (const [p, count] of perPool) {
          remaining -= count;
          this.add('request', r, { type: 'free', pool: p, count, remaining, serverPool, unneeded } as never);
        }
        return moves;
      }
      case 'task_create':
      case 'task_dispatch':
      case 'task_start':
      case 'task_end':
      case 'task_consume':
      case 'server_lost': {
        if (!this.cad) return this.unknown(ev.ev, `the header declares no attention servers (attentionServers, trace v4)`);
        const planned = this.cad.plan(ev, this, stepKey);
        if (!Array.isArray(planned)) return this.refuse(ev.ev, planned.protects, planned.message);
        for (const mv of planned) this.add(mv.kind, mv.index, mv.event);
        return moves;
      }
      case 'slot_alloc':
      case 'slot_free': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        if (ev.slot >= this.slots.length) return this.unknown(ev.ev, `state slot ${ev.slot} does not exist: the header declares ${this.header.stateSlots ?? 0} per GPU × ${this.header.gpus} GPU(s)`);
        if (ev.ev === 'slot_alloc') {
          const w = this.worker(ev, ev.worker);
          if (typeof w !== 'number') return w;
          const gpu = this.workers[w].context.gpu;
          const slotGpu = Math.floor(ev.slot / this.header.stateSlots!);
          if (slotGpu !== gpu) return this.unknown(ev.ev, `state slot ${ev.slot} is in GPU ${slotGpu}'s pool; ${ev.worker} runs on GPU ${gpu}`);
          this.add('request', r, { type: 'slot_alloc' });
        } else {
          const ctx = this.requests[r].context;
          this.add('request', r, { type: 'slot_free', remaining: ctx.owned.reduce((a, n) => a + n, 0) + ctx.slots - 1 } as never);
        }
        this.add('slot', ev.slot, { type: ev.ev, req: ev.req } as never);
        return moves;
      }
      case 'finish':
      case 'abort': {
        const r = this.req(ev, ev.req);
        if (typeof r !== 'number') return r;
        this.add('request', r, { type: ev.ev });
        const server = this.requests[r].context.server;
        if (server !== null) this.add('worker', this.workerIndex.get(server)!, { type: ev.ev, req: ev.req } as never);
        return moves;
      }
      case 'resize_begin': {
        const epoch = this.partition[0].context.epoch;
        const liveWorkers = this.workers.filter((w) => w.context.epoch === epoch && w.value !== 'stopped').length;
        this.add('partition', 0, { type: 'resize_begin', epoch: ev.epoch, prefill: ev.prefill, decode: ev.decode, liveWorkers } as never);
        return moves;
      }
      case 'worker_start': {
        if (this.workerIndex.has(ev.worker)) return this.unknown(ev.ev, `worker ${ev.worker} already exists; worker ids are not reused`);
        if ((ev.gpu ?? 0) >= this.header.gpus) return this.unknown(ev.ev, `gpu ${ev.gpu} does not exist (${this.header.gpus} gpu(s))`);
        this.add('partition', 0, { type: 'worker_start', epoch: ev.epoch, role: ev.role, share: ev.share } as never);
        return moves;
      }
      case 'worker_ready':
      case 'worker_stop': {
        const w = this.worker(ev, ev.worker);
        if (typeof w !== 'number') return w;
        this.add('partition', 0, { type: ev.ev, epoch: this.workers[w].context.epoch } as never);
        this.add('worker', w, { type: ev.ev });
        return moves;
      }
      case 'resize_end':
        this.add('partition', 0, { type: 'resize_end', epoch: ev.epoch } as never);
        return moves;
      case 'tick':
      case 'idle':
        // Trace v3 clock events (CLOCK_EVENTS): they move no machine; the checker judges deadlines and, at idle, the at-rest rules.
        return moves;
    }
  }

  /** Cached blocks that no request holds (evictable) and that some request holds (protected). */
  cacheSize(): { evictable: number; protected: number } {
    return { evictable: this.cachedFree, protected: this.cachedHeld };
  }

  /** The cache counters, moved by the blocks an event changes (before their new snapshots are written). */
  private countCached(pending: PendingMoves): void {
    const weigh = (snap: Snapshot<BlockContext>, sign: number) => {
      if (snap.context.key === null) return;
      if (snap.value === 'cached') this.cachedFree += sign;
      else this.cachedHeld += sign;
    };
    for (const p of pending) {
      if (p.kind !== 'block') continue;
      weigh(this.blocks[p.index], -1);
      weigh(p.snap as Snapshot<BlockContext>, 1);
    }
  }

  /** The GPU (pool) of the worker serving request r, or null when no worker serves it. */
  private serverGpu(r: number): number | null {
    const server = this.requests[r].context.server;
    return server === null ? null : this.workers[this.workerIndex.get(server)!].context.gpu;
  }

  /**
   * Trace v2: a block of r's table that a step of `tokens` more positions writes while others hold it too. The
   * step writes in its worker's pool (`gpu`): after a handoff across GPUs the table also lists the old copy.
   */
  private sharedBlockWritten(r: number, tokens: number, gpu: number): number | null {
    const T = this.header.blockSize;
    const from = this.requests[r].context.computed + this.inFlightTokens(r);
    const table = this.header.gpus === 1 ? this.tables[r] : this.tables[r].filter((b) => this.poolOf(b) === gpu);
    const last = Math.min(Math.floor((from + tokens - 1) / T), table.length - 1);
    for (let i = Math.floor(from / T); i <= last; i++) if (this.blocks[table[i]].context.owners.length > 1) return table[i];
    return null;
  }

  /** Positions of request r being computed by its steps in flight. */
  private inFlightTokens(r: number): number {
    let n = 0;
    for (const key of this.reqOps[r]) {
      const op = this.ops.get(key)!;
      const k = op.reqs.indexOf(r);
      if (k >= 0) n += op.tokens[k];
    }
    return n;
  }

  // -------------------------------------------------------------------------------------------
  // Applying an event

  /**
   * Applies one event: null when every involved machine allowed it (the state has moved), or the Refusal
   * of the first that did not (the state is unchanged).
   */
  apply(ev: TraceEvent): Refusal | null {
    const pending = this.attempt(ev);
    if (!Array.isArray(pending)) return pending;
    this.commit(ev, pending);
    return null;
  }

  /**
   * Every involved machine's move for the event, computed without changing anything: the moves, or the
   * Refusal of the first machine that does not allow its part. (The explorer attempts, then commits into a
   * copy only the events that are allowed.)
   */
  attempt(ev: TraceEvent): PendingMoves | Refusal {
    const moves = this.plan(ev);
    if (!Array.isArray(moves)) return moves;
    // Each machine moves from the result of its previous move in this event (an event can touch an entity twice).
    const pending: PendingMoves = [];
    // Small events search linearly; large ones (a big batch, a long block list) index their moves: blocks
    // through a stamped array, the rest through a map.
    const large = moves.length > 8;
    const slots = large ? new Map<number, number>() : null;
    const stamp = large ? ++moveStamp : 0;
    for (const mv of moves) {
      let slot = -1;
      if (large) {
        if (mv.kind === 'block') slot = this.blockStamp[mv.index] === stamp ? this.blockSlot[mv.index] : -1;
        else if (mv.kind === 'request') slot = requestStamp[mv.index] === stamp ? requestSlot[mv.index] : -1;
        else slot = slots!.get(KIND_CODE[mv.kind] + mv.index * KINDS) ?? -1;
      } else for (let i = 0; i < pending.length; i++) if (pending[i].index === mv.index && pending[i].kind === mv.kind) slot = i;
      const cur = slot >= 0 ? pending[slot].snap : this.entities(mv.kind)[mv.index];
      const next = fireOrRefuse(this.machines[mv.kind], cur as Snapshot<any>, mv.event);
      if ('protects' in next) {
        next.message = `${this.label(mv.kind, mv.index)}: ${next.message}`;
        return next;
      }
      if (this.fired) this.fired.push(transitionName(mv.kind, (cur as Snapshot<unknown>).value as string, mv.event.type));
      if (slot >= 0) pending[slot].snap = next;
      else {
        if (large) {
          if (mv.kind === 'block') {
            this.blockStamp[mv.index] = stamp;
            this.blockSlot[mv.index] = pending.length;
          } else if (mv.kind === 'request') {
            if (mv.index >= requestStamp.length) growRequestSlots(mv.index + 1);
            requestStamp[mv.index] = stamp;
            requestSlot[mv.index] = pending.length;
          } else slots!.set(KIND_CODE[mv.kind] + mv.index * KINDS, pending.length);
        }
        pending.push({ kind: mv.kind, index: mv.index, snap: next });
      }
    }
    return pending;
  }

  /** Writes the moves of an attempted event (attempted on this state, or on the state this one copies). */
  commit(ev: TraceEvent, pending: PendingMoves): void {
    this.touched = pending;
    if (this.header.version !== 1) this.countCached(pending);
    for (const p of pending) this.entities(p.kind)[p.index] = p.snap as never;
    this.bookkeep(ev);
    this.time = ev.t;
    if (this.retireEnded) for (const p of pending) if (p.kind === 'request') this.retire(p.index);
  }

  /** Replaces an ended request that holds nothing by a shared record of its end state. */
  private retire(r: number): void {
    const snap = this.requests[r];
    if (snap.value !== 'finished' && snap.value !== 'aborted') return;
    const c = snap.context;
    if (c.inFlight !== 0 || c.deferredFree || c.slots !== 0 || this.tables[r].length !== 0) return;
    this.requests[r] = snap.value === 'finished' ? RETIRED.finished : RETIRED.aborted;
    this.tables[r] = NOTHING;
    this.keys[r] = NO_KEYS;
    this.reqOps[r] = NO_OPS;
  }

  /** What the composition keeps beyond the machines. */
  private bookkeep(ev: TraceEvent): void {
    switch (ev.ev) {
      case 'arrive': {
        const r = this.requests.length;
        this.ownIds();
        this.requestIndex.set(ev.req, r);
        this.requestIds.push(ev.req);
        this.requests.push({
          value: this.machines.request.initial,
          context: initialContext(this.machines.request, { prompt: ev.prompt, maxTokens: ev.maxTokens ?? 0, pools: this.header.gpus }),
        });
        this.tables.push([]);
        this.keys.push(ev.keys ? ev.keys.slice() : []);
        this.reqOps.push([]);
        this.liveCount++;
        this.touched.push({ kind: 'request', index: r });
        return;
      }
      case 'alloc':
      case 'alloc_take': {
        const t = this.tables[this.requestIndex.get(ev.req)!];
        for (const b of ev.blocks) t.push(b);
        if (this.blockGroup !== null) {
          const g = ev.ev === 'alloc' ? this.groupOf(ev.group) : 0;
          for (const b of ev.blocks) this.blockGroup[b] = g;
        }
        return;
      }
      case 'cache_hit': {
        // Before its first step the request's table is empty: the hit blocks are its first positions.
        const t = this.tables[this.requestIndex.get(ev.req)!];
        for (const b of ev.blocks) t.push(b);
        return;
      }
      case 'fork': {
        // The child: the parent's state and counters, its block table and keys, nothing in flight.
        const p = this.requestIndex.get(ev.parent)!;
        const c = this.requests.length;
        this.ownIds();
        this.requestIndex.set(ev.child, c);
        this.requestIds.push(ev.child);
        const parent = this.requests[p];
        this.requests.push({ value: parent.value, context: { ...parent.context, owned: parent.context.owned.slice(), inFlight: 0, deferredFree: false } });
        this.tables.push(this.tables[p].slice());
        this.keys.push(this.keys[p].slice());
        this.reqOps.push([]);
        this.liveCount++;
        this.touched.push({ kind: 'request', index: c });
        return;
      }
      case 'cow': {
        const t = this.tables[this.requestIndex.get(ev.req)!];
        t[t.indexOf(ev.shared)] = ev.copy;
        return;
      }
      case 'cache_insert': {
        // A key past the arrive's list (a full block of generated tokens) becomes the request's key there.
        const r = this.requestIndex.get(ev.req)!;
        const at = this.tables[r].indexOf(ev.block);
        if (at >= 0 && this.keys[r][at] === undefined) {
          const keys = this.keys[r];
          while (keys.length < at) keys.push(undefined);
          keys[at] = ev.key;
        }
        return;
      }
      case 'free': {
        const r = this.requestIndex.get(ev.req)!;
        if (this.blockGroup !== null) {
          // A live request's free of its first blocks of a windowed group; a retraction or an end frees them all.
          const G = this.header.groups!.length;
          if (this.partialFree) {
            const at = this.serverGpu(r)! * G + this.groupOf(ev.group);
            const d = this.dropped.get(r) ?? new Array<number>(this.header.gpus * G).fill(0);
            d[at] += ev.blocks.length;
            this.dropped.set(r, d);
          } else if (!this.tailFree) {
            // A whole free of a pool's blocks: that pool's tables start again from position 0.
            const d = this.dropped.get(r);
            if (d) for (const b of ev.blocks) d.fill(0, this.poolOf(b) * G, this.poolOf(b) * G + G);
          }
          for (const b of ev.blocks) this.blockGroup[b] = -1;
        }
        const t = this.tables[r];
        // Requests usually free their whole table at once; the moves have checked that each block was theirs.
        if (ev.blocks.length === t.length) t.length = 0;
        else {
          const freed = new Set(ev.blocks);
          this.tables[r] = t.filter((b) => !freed.has(b));
        }
        return;
      }
      case 'step_begin': {
        const gpu = this.workers[this.workerIndex.get(ev.worker)!].context.gpu;
        const key = stepKey(ev.worker, ev.step);
        const op: InFlightOp = { label: `step ${ev.step} of ${ev.worker}`, kind: 'step', writer: ev.worker, reqs: [], tokens: [], held: [] };
        const onePool = this.header.gpus === 1;
        for (const item of ev.batch) {
          const r = this.requestIndex.get(item.req)!;
          op.reqs.push(r);
          op.tokens.push(item.tokens);
          if (item.draft) {
            (op.drafts ??= new Array(op.reqs.length - 1).fill(0)).push(item.draft);
            if (item.ids) this.draftIds.set(r, item.ids.slice(item.tokens - item.draft));
          } else if (op.drafts) op.drafts.push(0);
          // A step reads all of the request's blocks in its worker's pool and writes the last ones.
          op.held.push(onePool ? this.tables[r].slice() : this.tables[r].filter((b) => this.poolOf(b) === gpu));
          this.reqOps[r].push(key);
        }
        this.beginOp(key, op);
        return;
      }
      case 'transfer_begin': {
        const r = this.requestIndex.get(ev.req)!;
        const key = transferKey(ev.xfer);
        const blocks = this.tables[r].slice();
        this.reqOps[r].push(key);
        this.beginOp(key, { label: `transfer ${ev.xfer}`, kind: 'transfer', writer: ev.to, reqs: [r], tokens: [0], held: [blocks] });
        return;
      }
      case 'step_end': {
        const op = this.ops.get(stepKey(ev.worker, ev.step))!;
        if (op.drafts) {
          // A verify's drafts beyond the accepted prefix are rolled back: only the accepted are still to match.
          for (let i = 0; i < op.reqs.length; i++) {
            const ids = this.draftIds.get(op.reqs[i]);
            if (op.drafts[i] === 0 || ids === undefined) continue;
            ids.length = ev.accepted?.[this.requestIds[op.reqs[i]]] ?? 0;
            if (ids.length === 0) this.draftIds.delete(op.reqs[i]);
          }
        }
        this.endOp(stepKey(ev.worker, ev.step));
        this.cad?.bookkeep(ev, this, stepKey);
        return;
      }
      case 'token': {
        if (this.header.version < 3) return;
        const r = this.requestIndex.get(ev.req)!;
        const drafts = this.draftIds.get(r);
        if (drafts !== undefined) {
          drafts.shift();
          if (drafts.length === 0) this.draftIds.delete(r);
        }
        let ids = this.outputIds.get(r);
        if (ids === undefined && ev.token === undefined) return;
        if (ids === undefined) this.outputIds.set(r, (ids = new Array<number>(ev.index).fill(-1)));
        ids[ev.index] = ev.token ?? -1;
        return;
      }
      case 'transfer_end':
        this.endOp(transferKey(ev.xfer));
        return;
      case 'finish':
      case 'abort': {
        this.liveCount--;
        const r = this.requestIndex.get(ev.req)!;
        this.outputIds.delete(r);
        this.draftIds.delete(r);
        return;
      }
      case 'worker_start':
        this.addWorker(ev.worker, { role: ev.role, epoch: ev.epoch, share: ev.share, gpu: ev.gpu ?? 0 }, this.machines.worker.initial);
        this.touched.push({ kind: 'worker', index: this.workers.length - 1 });
        return;
      case 'task_create':
      case 'task_dispatch':
      case 'task_consume':
      case 'server_lost':
        this.cad!.bookkeep(ev, this, stepKey);
        return;
      default:
        return;
    }
  }

  private beginOp(key: string, op: InFlightOp) {
    this.ops.set(key, op);
    const holds = this.holds;
    for (const blocks of op.held) for (let i = 0; i < blocks.length; i++) holds[blocks[i]]++;
  }

  private endOp(key: string) {
    const op = this.ops.get(key)!;
    const holds = this.holds;
    for (const blocks of op.held) for (let i = 0; i < blocks.length; i++) holds[blocks[i]]--;
    for (const r of op.reqs) {
      const list = this.reqOps[r];
      list.splice(list.indexOf(key), 1);
    }
    this.ops.delete(key);
  }
}

const transitionNames = new Map<string, Map<string, Map<string, string>>>();

/** `machine:state:event`, built once per distinct triple (coverage records one per transition taken). */
function transitionName(kind: MachineName, state: string, event: string): string {
  let byState = transitionNames.get(kind);
  if (!byState) transitionNames.set(kind, (byState = new Map()));
  let byEvent = byState.get(state);
  if (!byEvent) byState.set(state, (byEvent = new Map()));
  let name = byEvent.get(event);
  if (name === undefined) byEvent.set(event, (name = `${kind}:${state}:${event}`));
  return name;
}

export function stepKey(worker: string, step: string): string {
  return `s:${worker}:${step}`;
}

export function transferKey(xfer: string): string {
  return `x:${xfer}`;
}

