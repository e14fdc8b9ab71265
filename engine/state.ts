// The engine's records: requests, steps, KV transfers and workers. Plain mutable data; the modules of the
// engine (kv/, sched/, partition/, modes/) change them, and observe.ts shows them in the spec's vocabulary.
import type { Role, StepResult } from './executors/step-executor.ts';
import type { RequestRecord } from './metrics.ts';
import type { RoleScheduler } from './sched/scheduler.ts';

export type RequestState = 'waiting' | 'prefilling' | 'prefilled' | 'handedOff' | 'decoding' | 'retracting' | 'finished' | 'aborted';
export type WorkerState = 'starting' | 'idle' | 'busy' | 'stopped';

/** No drafts: one shared empty list. */
export const NO_DRAFTS: readonly number[] = Object.freeze([]);

export class Req {
  state: RequestState = 'waiting';
  server: Worker | null = null;
  generated = 0;
  computed = 0;
  /** Block table per pool, in logical order. */
  blocks: number[][];
  /** Steps and transfers in flight that use its blocks. */
  inFlight = 0;
  /** A step computed its whole sequence; the token is appended next (semi-PD: when decode pops the FIFO). */
  tokenOwed = false;
  pendingToken = -1;
  /** Handed to the decode GPU, KV not there yet (disaggregated). */
  awaitingKv = false;
  transferEnded = false;
  /** Free (or finish retracting) once the steps and transfers in flight end. */
  settleFree = false;
  inWaiting = false;
  /** 0: retracted (head of the queue); 1: new. */
  waitClass = 1;
  firstTokenAt = Number.NaN;
  lastTokenAt = Number.NaN;
  endAt = Number.NaN;
  preemptions = 0;
  outcome: RequestRecord['outcome'] = 'live';
  outputs: number[] | null;
  /** The workload's shared prefix, as a model executor reads it: its sequence's seed and length (0: none). */
  prefixSeed = 0;
  prefixLength = 0;
  /** Prefix caching: the prefix's id, its full blocks, and how many of them hold computed K/V now (or are cached). */
  prefixId: string | null = null;
  prefixBlocks = 0;
  prefixReady = 0;
  /** Parallel samples still to fork off when the prompt is first prefilled (n − 1), and the forks made. */
  forksLeft = 0;
  children: Req[] | null = null;
  /** Asynchronous scheduling: the worker that preempted it while a step used its blocks, until they are freed. */
  victimOf: Worker | null = null;
  /**
   * Layer groups (a sliding window): per pool, the windowed group's block table after the blocks it dropped
   * out of the window, and how many it dropped; null without a window.
   */
  windowed: number[][] | null = null;
  windowDropped: number[] | null = null;
  /** State slots: the slot holding its recurrent state (global id), or -1. */
  slot = -1;
  /** Speculative decoding: the draft tokens proposed for its next decode step (none: a plain decode). */
  drafts: readonly number[] = NO_DRAFTS;

  constructor(
    readonly idx: number,
    readonly id: string,
    readonly seed: number,
    readonly prompt: number,
    readonly maxTokens: number,
    readonly arrival: number,
    readonly abortAt: number,
    gpus: number,
    keepOutputs: boolean,
  ) {
    this.blocks = [];
    for (let g = 0; g < gpus; g++) this.blocks.push([]);
    this.outputs = keepOutputs ? [] : null;
  }

  /** Positions prefill (re)computes: the prompt and every generated token. */
  get length(): number {
    return this.prompt + this.generated;
  }

  get ended(): boolean {
    return this.state === 'finished' || this.state === 'aborted';
  }
}

export class Step {
  result: StepResult | null = null;
  /** Speculative decoding: per item the drafts it verifies (NO_DRAFTS for the others); null when no item has any. */
  drafts: (readonly number[])[] | null = null;

  constructor(
    readonly id: string,
    readonly worker: Worker,
    readonly reqs: Req[],
    readonly tokens: number[],
    /** 1 for a decode item, 0 for a prefill item. */
    readonly decode: number[],
  ) {}
}

export class Transfer {
  constructor(
    readonly id: string,
    readonly req: Req,
    readonly from: Worker,
    readonly to: Worker,
  ) {}
}

export class Worker {
  load = 0;
  /** Decode: handed-off requests in pop order (entries that left are skipped lazily). */
  fifo: Req[] = [];
  /** Decode/unified: requests decoding on it. */
  running: Req[] = [];
  /** Prefill/unified: requests whose prefill it is computing. */
  prefilling: Req[] = [];
  /** Disaggregated prefill: prefilled requests waiting for decode-side blocks. */
  pendingTransfer: Req[] = [];
  step: Step | null = null;
  /** Old worker of a resize in its switch: it stops after its current iteration. */
  retiring = false;
  stepSeq = 0;
  /** Asynchronous scheduling: the batch scheduled, while the current step runs, for the next one. */
  nextBatch: Req[] | null = null;
  /** Asynchronous scheduling: its last victim, whose free waits for the step in flight (it preempts no other until then). */
  pendingVictim: Req | null = null;
  /** Its role's scheduler (set when it is created). */
  scheduler!: RoleScheduler;

  constructor(
    readonly id: string,
    readonly role: Role,
    readonly epoch: number,
    readonly share: number,
    readonly gpu: number,
    public state: WorkerState,
    /** Whether it allocates the blocks of its own work (not so for a prefill worker under the decode-owned allocator). */
    readonly allocatesOwn: boolean,
  ) {}

  /** Serving: ready, idle or running a step. */
  get serving(): boolean {
    return this.state === 'idle' || this.state === 'busy';
  }
}

/** Keeps the entries of `list` for which `keep` holds, in order, in place. */
export function compact<T>(list: T[], keep: (x: T) => boolean): void {
  let j = 0;
  for (let i = 0; i < list.length; i++) if (keep(list[i])) list[j++] = list[i];
  list.length = j;
}
