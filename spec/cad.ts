// Core-attention disaggregation (CAD, the DistCA system: arXiv 2510.18121): the core attention
// softmax(QKᵀ)V of a request's query shard runs as a stateless task on an attention server, in one of the
// server's buffers. Two machines: a task (created with its query shard and the KV it reads → dispatched to
// a server's buffer → computing → result returned → consumed by the worker that made it) and a buffer (free →
// holding a task's inputs → computing → holding its result → free once the result is read). A lost server
// sends its unfinished tasks back to be dispatched again; its buffers are gone with it.
import { setup } from 'xstate';
import type { InvariantName } from './invariants.ts';
import { assignActions, guardChecks, type GuardDef, type MachineParts, type Snapshot, type Update } from './machine-kit.ts';
import type { TraceEvent, TraceHeader } from './trace-format.ts';

export interface TaskContext {
  /** The server and buffer it was dispatched to (null, -1 while not dispatched). */
  server: string | null;
  buffer: number;
  /** Dispatches so far (a re-dispatch after a server loss counts). */
  dispatches: number;
}

export type TaskEvent =
  | { type: 'task_dispatch'; server: string; buffer: number }
  | { type: 'task_start' }
  | { type: 'task_end' }
  | { type: 'task_consume' }
  | { type: 'server_lost'; server: string };

const taskGuards = {
  onLostServer: {
    check: ({ context, event }) => context.server === (event as Extract<TaskEvent, { type: 'server_lost' }>).server,
    explain: () => '',
  },
} satisfies Record<string, GuardDef<TaskContext, TaskEvent>>;

const taskUpdates = {
  dispatch: ({ context, event }) => {
    const e = event as Extract<TaskEvent, { type: 'task_dispatch' }>;
    return { server: e.server, buffer: e.buffer, dispatches: context.dispatches + 1 };
  },
  undispatch: () => ({ server: null, buffer: -1 }),
} satisfies Record<string, Update<TaskContext, TaskEvent>>;

export const taskParts: MachineParts<TaskContext, TaskEvent> = {
  guards: taskGuards,
  updates: taskUpdates,
  unhandled: (state, c, event) => {
    if (event.type === 'task_dispatch') return { protects: 'TaskComputedOnce', message: `is ${state} on ${c.server}; dispatching it again would compute it twice (only a lost server's tasks go out again)` };
    if (event.type === 'task_start' || event.type === 'task_end') return { protects: 'TaskComputedOnce', message: `is ${state}; '${event.type}' does not apply (a task is computed once, after its dispatch)` };
    if (event.type === 'task_consume') return { protects: 'ResultConsumedOnce', message: state === 'consumed' ? 'its result was consumed already' : `is ${state}; its result is not there to read` };
    return { protects: 'LifecycleOrder', message: `is ${state}; '${event.type}' does not apply` };
  },
};

const lost = { server_lost: { guard: 'onLostServer', target: 'created', actions: 'undispatch' } } as const;

export const taskMachine = setup({
  types: { context: {} as TaskContext, events: {} as TaskEvent },
  guards: guardChecks(taskGuards),
  actions: assignActions(taskUpdates),
}).createMachine({
  id: 'task',
  initial: 'created',
  context: { server: null, buffer: -1, dispatches: 0 },
  states: {
    created: { on: { task_dispatch: { target: 'dispatched', actions: 'dispatch' }, server_lost: {} } },
    dispatched: { on: { task_start: { target: 'computing' }, ...lost } },
    computing: { on: { task_end: { target: 'returned' }, ...lost } },
    // The result sits in the server's buffer until the worker reads it; a loss before then loses it too.
    returned: { on: { task_consume: { target: 'consumed' }, ...lost } },
    consumed: { on: { server_lost: {} } },
  },
});

export interface BufferContext {
  /** The task whose inputs or result it holds, or null when free. */
  task: string | null;
}

export type BufferEvent =
  | { type: 'task_dispatch'; task: string }
  | { type: 'task_start'; task: string }
  | { type: 'task_end'; task: string }
  | { type: 'task_consume'; task: string }
  | { type: 'server_lost' };

const bufferGuards = {
  holdsTask: {
    check: ({ context, event }) => context.task === (event as { task?: string }).task,
    protects: 'BufferNotReused',
    explain: (c, e) => `holds task ${c.task}'s data, not task ${(e as { task?: string }).task}'s`,
  },
} satisfies Record<string, GuardDef<BufferContext, BufferEvent>>;

const bufferUpdates = {
  load: ({ event }) => ({ task: (event as Extract<BufferEvent, { type: 'task_dispatch' }>).task }),
  clear: () => ({ task: null }),
} satisfies Record<string, Update<BufferContext, BufferEvent>>;

export const bufferParts: MachineParts<BufferContext, BufferEvent> = {
  guards: bufferGuards,
  updates: bufferUpdates,
  unhandled: (state, c, event) => {
    if (event.type === 'task_dispatch')
      return { protects: 'BufferNotReused', message: `holds task ${c.task}'s ${state === 'holdingResult' ? 'unread result' : 'inputs'}; loading task ${event.task} into it would overwrite them` };
    return { protects: 'LifecycleOrder', message: `is ${state}; '${event.type}' does not apply` };
  },
};

export const bufferMachine = setup({
  types: { context: {} as BufferContext, events: {} as BufferEvent },
  guards: guardChecks(bufferGuards),
  actions: assignActions(bufferUpdates),
}).createMachine({
  id: 'buffer',
  initial: 'free',
  context: { task: null },
  states: {
    free: { on: { task_dispatch: { target: 'holdingInputs', actions: 'load' }, server_lost: {} } },
    holdingInputs: { on: { task_start: { guard: 'holdsTask', target: 'computing' }, server_lost: { target: 'free', actions: 'clear' } } },
    // In place: the output overwrites the task's own inputs in the same buffer.
    computing: { on: { task_end: { guard: 'holdsTask', target: 'holdingResult' }, server_lost: { target: 'free', actions: 'clear' } } },
    holdingResult: { on: { task_consume: { guard: 'holdsTask', target: 'free', actions: 'clear' }, server_lost: { target: 'free', actions: 'clear' } } },
  },
});

// ---------------------------------------------------------------------------------------------
// The composition's part: which machines a CAD event moves, and what it keeps beyond them (each task's
// request, step and blocks; the read-holds on those blocks; each server's buffers; the lost servers).

/** What the CAD part reads of the system it belongs to. */
export interface CadHost {
  readonly header: TraceHeader;
  readonly requestIndex: ReadonlyMap<string, number>;
  readonly requestIds: readonly string[];
  readonly workerIndex: ReadonlyMap<string, number>;
  readonly requests: readonly Snapshot<{ computed: number }>[];
  readonly tables: readonly (readonly number[])[];
  readonly ops: ReadonlyMap<string, { reqs: number[]; tokens: number[] }>;
  readonly holds: Int32Array;
  poolOf(block: number): number;
  workerGpu(w: number): number;
}

/** A task beyond its machine: who made it, for which step, what it reads, where it was sent. */
interface TaskInfo {
  readonly req: number;
  readonly step: string;
  readonly blocks: readonly number[];
  /** Global buffer indices: its own, and others it reads (−1, none while not dispatched). */
  readonly buffer: number;
  readonly reads: readonly number[];
}

type Move = { kind: 'task' | 'buffer'; index: number; event: { type: string } };
export type CadPlan = Move[] | { protects: InvariantName; message: string };

export class CadBook {
  tasks: Snapshot<TaskContext>[];
  taskIds: string[];
  taskIndex: Map<string, number>;
  private info: TaskInfo[];
  buffers: Snapshot<BufferContext>[];
  /** Per server id: its first global buffer index and its buffer count. */
  private readonly servers: ReadonlyMap<string, { first: number; count: number }>;
  private lost: Set<string>;
  /** Per step in flight (its key), its tasks. */
  private stepTasks: Map<string, number[]>;
  /** Per buffer (global index), the tasks dispatched to read its inputs too (pruned as they finish). */
  private readers: Map<number, number[]>;

  constructor(
    header: TraceHeader,
    private readonly taskStart: Snapshot<TaskContext>,
    bufferStart: Snapshot<BufferContext>,
    from?: CadBook,
    /** Whether an in-place end over inputs another task reads is refused (false: an explorer variant). */
    private readonly inPlaceCheck = true,
  ) {
    if (from) {
      this.inPlaceCheck = from.inPlaceCheck;
      this.tasks = from.tasks.slice();
      this.taskIds = from.taskIds.slice();
      this.taskIndex = new Map(from.taskIndex);
      this.info = from.info.slice();
      this.buffers = from.buffers.slice();
      this.servers = from.servers;
      this.lost = new Set(from.lost);
      this.stepTasks = new Map([...from.stepTasks].map(([k, v]) => [k, v.slice()]));
      this.readers = new Map([...from.readers].map(([k, v]) => [k, v.slice()]));
      return;
    }
    this.tasks = [];
    this.taskIds = [];
    this.taskIndex = new Map();
    this.info = [];
    const servers = new Map<string, { first: number; count: number }>();
    let n = 0;
    for (const s of header.attentionServers ?? []) {
      servers.set(s.id, { first: n, count: s.buffers });
      n += s.buffers;
    }
    this.servers = servers;
    this.buffers = new Array(n).fill(bufferStart);
    this.lost = new Set();
    this.stepTasks = new Map();
    this.readers = new Map();
  }

  clone(): CadBook {
    return new CadBook(undefined as never, this.taskStart, undefined as never, this);
  }

  /** The machines a CAD event moves, or why the composition refuses it; `stepKey` names a step in flight. */
  plan(ev: TraceEvent, host: CadHost, stepKey: (worker: string, step: string) => string): CadPlan {
    const moves: Move[] = [];
    switch (ev.ev) {
      case 'task_create': {
        if (this.taskIndex.has(ev.task)) return known(`task ${ev.task} was created already; task ids are not reused`);
        const r = host.requestIndex.get(ev.req);
        if (r === undefined) return known(`request ${ev.req} has not arrived`);
        const w = host.workerIndex.get(ev.worker);
        if (w === undefined) return known(`worker ${ev.worker} is not declared in the header and has not started`);
        const op = host.ops.get(stepKey(ev.worker, ev.step));
        const at = op ? op.reqs.indexOf(r) : -1;
        if (!op || at < 0) return reads(`step ${ev.step} of ${ev.worker} is not in flight with request ${ev.req}: a task is the attention of a step that computes its request`);
        const computed = host.requests[r].context.computed;
        const end = computed + op.tokens[at];
        if (ev.from < computed || ev.to > end || ev.from >= ev.to)
          return reads(`task ${ev.task} queries positions ${ev.from} .. ${ev.to - 1}, but the step computes ${ev.req}'s positions ${computed} .. ${end - 1}`);
        const T = host.header.blockSize;
        const gpu = host.workerGpu(w);
        const table = host.tables[r].filter((b) => host.poolOf(b) === gpu);
        for (const b of ev.blocks) if (!table.includes(b)) return reads(`task ${ev.task} reads block ${b}, which is not ${ev.req}'s on GPU ${gpu}`);
        const needed = table.slice(0, Math.ceil(ev.to / T)).filter((b) => !ev.blocks.includes(b));
        if (needed.length > 0) return reads(`task ${ev.task} attends to positions 0 .. ${ev.to - 1}, but its blocks leave out ${needed.join(', ')}, which hold some of them`);
        return moves;
      }
      case 'task_dispatch': {
        const t = this.taskIndex.get(ev.task);
        if (t === undefined) return known(`task ${ev.task} was not created`);
        const server = this.servers.get(ev.server);
        if (!server) return known(`attention server ${ev.server} is not declared in the header (${[...this.servers.keys()].join(', ') || 'none declared'})`);
        if (this.lost.has(ev.server)) return known(`attention server ${ev.server} was lost`);
        if (ev.buffer >= server.count) return known(`attention server ${ev.server} has ${server.count} buffer(s); there is no buffer ${ev.buffer}`);
        for (const b of ev.reads ?? []) {
          if (b >= server.count || b === ev.buffer) return known(`task ${ev.task} reads buffer ${b} of ${ev.server}, which ${b === ev.buffer ? 'is its own' : 'does not exist'}`);
          const held = this.buffers[server.first + b];
          if (held.value !== 'holdingInputs' && held.value !== 'computing')
            return inPlace(`task ${ev.task} reads buffer ${b} of ${ev.server}, which holds no inputs (${held.value === 'free' ? 'it is free' : `task ${held.context.task}'s output overwrote them in place`})`);
        }
        moves.push({ kind: 'task', index: t, event: { type: 'task_dispatch', server: ev.server, buffer: server.first + ev.buffer } as never });
        moves.push({ kind: 'buffer', index: server.first + ev.buffer, event: { type: 'task_dispatch', task: ev.task } as never });
        return moves;
      }
      case 'task_start':
      case 'task_end':
      case 'task_consume': {
        const t = this.taskIndex.get(ev.task);
        if (t === undefined) return known(`task ${ev.task} was not created`);
        if (ev.ev === 'task_end' && this.inPlaceCheck) {
          // In place: its output overwrites its inputs, which another unfinished task may still read.
          const still = this.readingNow(this.tasks[t].context.buffer, t);
          if (still >= 0) return inPlace(`task ${ev.task}'s output would overwrite its inputs in place, but task ${this.taskIds[still]} (${this.tasks[still].value}) still reads them`);
        }
        moves.push({ kind: 'task', index: t, event: { type: ev.ev } });
        const b = this.tasks[t].context.buffer;
        if (b >= 0) moves.push({ kind: 'buffer', index: b, event: { type: ev.ev, task: ev.task } as never });
        return moves;
      }
      case 'server_lost': {
        const server = this.servers.get(ev.server);
        if (!server) return known(`attention server ${ev.server} is not declared in the header`);
        if (this.lost.has(ev.server)) return known(`attention server ${ev.server} was lost already`);
        for (let t = 0; t < this.tasks.length; t++) if (this.tasks[t].context.server === ev.server) moves.push({ kind: 'task', index: t, event: { type: 'server_lost', server: ev.server } as never });
        for (let b = server.first; b < server.first + server.count; b++) moves.push({ kind: 'buffer', index: b, event: { type: 'server_lost' } });
        return moves;
      }
      default:
        return moves;
    }
  }

  /** What the composition keeps, after the machines moved. */
  bookkeep(ev: TraceEvent, host: CadHost, stepKey: (worker: string, step: string) => string): void {
    switch (ev.ev) {
      case 'task_create': {
        const t = this.tasks.length;
        this.taskIndex.set(ev.task, t);
        this.taskIds.push(ev.task);
        this.tasks.push(this.taskStart);
        const key = stepKey(ev.worker, ev.step);
        this.info.push({ req: host.requestIndex.get(ev.req)!, step: key, blocks: ev.blocks.slice(), buffer: -1, reads: [] });
        const list = this.stepTasks.get(key);
        if (list) list.push(t);
        else this.stepTasks.set(key, [t]);
        for (const b of ev.blocks) host.holds[b]++;
        return;
      }
      case 'task_dispatch': {
        const t = this.taskIndex.get(ev.task)!;
        const first = this.servers.get(ev.server)!.first;
        const reads = (ev.reads ?? []).map((b) => first + b);
        this.info[t] = { ...this.info[t], buffer: first + ev.buffer, reads };
        for (const b of reads) {
          const list = this.readers.get(b);
          if (list) list.push(t);
          else this.readers.set(b, [t]);
        }
        return;
      }
      case 'task_consume': {
        const t = this.taskIndex.get(ev.task)!;
        for (const b of this.info[t].blocks) host.holds[b]--;
        return;
      }
      case 'server_lost':
        this.lost.add(ev.server);
        return;
      case 'step_end':
        this.stepTasks.delete(stepKey(ev.worker, ev.step));
        return;
      default:
        return;
    }
  }

  /** The tasks made in the step `key` (in flight), by index. */
  tasksOfStep(key: string): readonly number[] {
    return this.stepTasks.get(key) ?? NONE;
  }

  /** Task `t`'s request index, step key, blocks, and buffers it reads (global indices). */
  taskInfo(t: number): Readonly<TaskInfo> {
    return this.info[t];
  }

  /** The attention servers: each id with its first global buffer index and buffer count, and whether it was lost. */
  serverList(): { id: string; first: number; count: number; lost: boolean }[] {
    return [...this.servers].map(([id, s]) => ({ id, ...s, lost: this.lost.has(id) }));
  }

  /**
   * A task other than `t` that is dispatched or computing and reads buffer `b`'s inputs, or −1. The buffer's
   * reader list drops the tasks that no longer read it (finished, lost, or dispatched again elsewhere).
   */
  private readingNow(b: number, t: number): number {
    const list = this.readers.get(b);
    if (!list) return -1;
    let kept = 0;
    let found = -1;
    for (const o of list) {
      const v = this.tasks[o].value;
      if ((v !== 'dispatched' && v !== 'computing') || !this.info[o].reads.includes(b)) continue;
      list[kept++] = o;
      if (o !== t && found < 0) found = o;
    }
    list.length = kept;
    return found;
  }

  /** Why the step `key` may not end yet (a task of it not consumed), or null. */
  openTask(key: string): string | null {
    for (const t of this.stepTasks.get(key) ?? []) {
      const v = this.tasks[t].value;
      if (v !== 'consumed') return `task ${this.taskIds[t]} of the step is ${v}: its attention result has not been read back`;
    }
    return null;
  }

  /** The tasks not yet consumed that read block `b` (they hold it). */
  holdersOf(b: number): string[] {
    const out: string[] = [];
    for (let t = 0; t < this.tasks.length; t++) if (this.tasks[t].value !== 'consumed' && this.info[t].blocks.includes(b)) out.push(`task ${this.taskIds[t]}`);
    return out;
  }

  /** A buffer that is not free or a task not consumed, in words (at rest there is none), or null. */
  busyBuffer(): string | null {
    for (let b = 0; b < this.buffers.length; b++) if (this.buffers[b].value !== 'free') return `an attention server's buffer ${b} holds task ${this.buffers[b].context.task}'s data`;
    for (let t = 0; t < this.tasks.length; t++) if (this.tasks[t].value !== 'consumed') return `task ${this.taskIds[t]} is ${this.tasks[t].value}`;
    return null;
  }

  label(kind: 'task' | 'buffer', index: number): string {
    if (kind === 'task') return `task ${this.taskIds[index]}`;
    for (const [id, s] of this.servers) if (index >= s.first && index < s.first + s.count) return `buffer ${index - s.first} of ${id}`;
    return `buffer ${index}`;
  }
}

const NONE: readonly number[] = Object.freeze([]);
const known = (message: string) => ({ protects: 'KnownIds' as const, message });
const reads = (message: string) => ({ protects: 'TaskReadsOwnKv' as const, message });
const inPlace = (message: string) => ({ protects: 'InPlaceKeepsInputs' as const, message });
