// The serving engine: a deterministic discrete-event simulation, in virtual time, of prefill and decode
// workers over unified KV block pools, with continuous batching, chunked prefill, preemption by retraction,
// aborts, the partition controller's resize handoff (delayed switch, then asynchronous switch), and the
// disaggregated and unified baselines. docs/engine.md describes it; every action emits the trace event of
// spec/trace-format.ts that names it. The engine never imports the spec's machines: the spec judges its
// traces from the outside.
import { makeHeader, type BatchItem, type TraceEvent, type TraceHeader } from '../spec/trace-format.ts';
import { BlockPool, EngineBugError, NO_OWNER, type UtilisationReading } from './block-pool.ts';
import { CostModelExecutor } from './executors/cost-model.ts';
import { ExecutorError, type Role, type StepExecutor, type StepItem, type StepResult, type StepSpec } from './executors/step-executor.ts';
import { anyFault, type EngineFaults } from './faults.ts';
import { MinHeap } from './heap.ts';
import { percentiles, summarize, type OccupancySample, type RequestRecord, type RunMetrics, type SplitSample } from './metrics.ts';
import type { Decision, LatencyModel, Observation, Policy, Slo, Split } from './policy-api.ts';
import { latencyModel, type Profile } from './profile.ts';
import { hash2, hashString } from './random.ts';
import type { TraceSink } from './trace-sink.ts';
import { normalise, type WorkloadRequest } from './workloads/types.ts';

export type Mode = 'semi-pd' | 'nexus' | 'disaggregated' | 'unified';
export type Allocator = 'lock' | 'decode-owned';
export type RequestState = 'waiting' | 'prefilling' | 'prefilled' | 'handedOff' | 'decoding' | 'retracting' | 'finished' | 'aborted';
export type WorkerState = 'starting' | 'idle' | 'busy' | 'stopped';
export type PrefillOrder = NonNullable<Decision['prefillOrder']>;

/** What the engine needs of a policy: engine/policy-api.ts's Policy, or a loaded policy handle. */
export type PolicyHandle = Pick<Policy, 'name' | 'decide'> & { interval?: number };

export interface EngineOptions {
  mode: Mode;
  /** The requests to serve (sorted by arrival here; ids must be unique). */
  workload: readonly WorkloadRequest[];
  /** Profile data (engine/profile.ts's loadProfile); prices steps when no executor is given, and feeds the policy's model. */
  profile: Profile;
  /** KV blocks per pool (one pool per GPU). */
  blocks: number;
  /** Tokens per block. */
  blockSize: number;
  /** Epoch-0 split in percent; default by mode (semi-PD 80/100, Nexus 50/50, others 100/100). */
  split?: Split;
  /** Default: `decode-owned` for semi-PD (its code), `lock` otherwise. */
  allocator?: Allocator;
  /** `atomic` (default): one `alloc` event per allocation; `steps`: alloc_query, alloc_take, alloc_commit. */
  allocEvents?: 'atomic' | 'steps';
  /** Most prompt positions one prefill step computes (semi-PD, Nexus, disaggregated); default 8192. */
  prefillChunk?: number;
  /** Unified mode: token budget of one step, decode tokens first (SplitFuse, default 1024); 0 = no chunking (vLLM-D). */
  unifiedChunk?: number;
  /** Most requests in one decode batch; default 256. */
  maxBatch?: number;
  /**
   * Asynchronous scheduling (vLLM's async scheduling, SGLang's overlap scheduler) of decode and unified
   * workers: when step N ends its tokens are appended, step N + 1 is launched, and only then are step N's
   * stop conditions processed (a request that reached its limit is in step N + 1, and its free is deferred
   * until that step ends). A decode worker also schedules step N + 1 (its batch and blocks, preempting if
   * short) while step N runs, so that its victims may still be in step N. Default false.
   */
  asyncScheduling?: boolean;
  /**
   * Prefix caching: the full blocks of a request's `prefix` stay mapped (prefix → block) while they sit on
   * the free list after the request frees them; a later request with the same prefix is allocated exactly
   * those blocks if they are still mapped (a hit; its prefill still computes those positions). A block taken
   * from the free list for anything else leaves the map. Default false.
   */
  prefixCaching?: boolean;
  /**
   * Disaggregated mode: seconds a prefilled request may wait for decode-side blocks before the decode side
   * rejects it (an `abort`, after which the prefill side frees its blocks). Default: never.
   */
  decodeAdmitTimeout?: number;
  /** Fraction of a pool kept free when admitting new prefill work (vLLM's watermark); default 0.01. */
  watermark?: number;
  /** Executor of steps; default the cost model of `profile`. */
  executor?: StepExecutor;
  /** Called every `interval` of virtual time; none = the epoch-0 split for the whole run. */
  policy?: PolicyHandle | null;
  slo?: Slo;
  /** Mixed into every request's pseudo-token seed. */
  seed?: number;
  trace?: TraceSink | null;
  faults?: EngineFaults;
  /** Keep each request's output tokens (output-invariance checks); default false. */
  recordOutputs?: boolean;
  /** Seconds of history behind the policy's percentiles and arrival rate; default the policy's interval. */
  observationWindow?: number;
  /** Seconds between KV occupancy samples; default 1. */
  sampleInterval?: number;
  /** Written into the trace header's `source`. */
  source?: string;
}

/** Options that cannot run (bad mode, split, pool): one line. */
export class EngineConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineConfigError';
  }
}

/** A policy decision the engine cannot apply (engine/policies/ reports these as PolicyFaults first). */
export class InvalidDecisionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidDecisionError';
  }
}

// ---------------------------------------------------------------------------------------------
// Observable state, in the spec's vocabulary (for lockstep tests)

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
  /** Per block (global id, pool p holding p·B .. p·B + B − 1): the owning request's id, or null when free. */
  blocks: (string | null)[];
  requests: Record<string, RequestView>;
  workers: Record<string, WorkerView>;
  /** The waiting queue in pop order. */
  waiting: string[];
  inFlight: { steps: { worker: string; step: string; reqs: string[] }[]; transfers: { xfer: string; req: string }[] };
}

export interface RunResult {
  metrics: RunMetrics;
  header: TraceHeader;
  records: RequestRecord[];
  /** Simulation events processed. */
  events: number;
  /** Virtual time of the last event. */
  endTime: number;
  resizes: number;
  /** Requests still live when the simulation ran out of events: nothing could move them (a deadlock). */
  stalled: string[];
  /** Split decisions not applied: during another resize, or in a mode without a split to change. */
  ignoredSplitDecisions: number;
  policy: string | null;
  /** Prefix caching: blocks served from the prefix cache. */
  prefixHits: number;
}

export interface ProgressInfo {
  time: number;
  arrived: number;
  ended: number;
  total: number;
  events: number;
}

// ---------------------------------------------------------------------------------------------
// Internal entities

class Req {
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
  /** Prefix caching: the prefix's id, its full blocks, and how many of them hold computed K/V now. */
  prefixId: string | null = null;
  prefixBlocks = 0;
  prefixReady = 0;
  /** Parallel samples still to fork off when the prompt is first prefilled (n − 1), and the forks made. */
  forksLeft = 0;
  children: Req[] | null = null;
  /** Asynchronous scheduling: the worker that preempted it while a step used its blocks, until they are freed. */
  victimOf: Worker | null = null;

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
}

class Step {
  result: StepResult | null = null;

  constructor(
    readonly id: string,
    readonly worker: Worker,
    readonly reqs: Req[],
    readonly tokens: number[],
    /** 1 for a decode item, 0 for a prefill item. */
    readonly decode: number[],
  ) {}
}

class Transfer {
  constructor(
    readonly id: string,
    readonly req: Req,
    readonly from: Worker,
    readonly to: Worker,
  ) {}
}

class Worker {
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

  constructor(
    readonly id: string,
    readonly role: Role,
    readonly epoch: number,
    readonly share: number,
    readonly gpu: number,
    public state: WorkerState,
  ) {}
}

interface ResizeState {
  epoch: number;
  split: Split;
  phase: 'initialising' | 'switching';
  olds: Worker[];
  news: Worker[];
  ready: number;
}

const enum Kind {
  Arrival,
  Abort,
  StepEnd,
  TransferEnd,
  WorkerReady,
  PolicyTick,
  AdmitTimeout,
}

interface SimEvent {
  time: number;
  seq: number;
  kind: Kind;
  ref: Req | Step | Transfer | Worker | null;
}

const NONE: readonly number[] = [];

/** The pool whose blocks the prefix cache maps: the prefill (or unified) worker's, GPU 0 in every mode. */
const PREFIX_POOL = 0;

const DEFAULT_SPLIT: Record<Mode, Split> = {
  'semi-pd': { prefill: 80, decode: 100 },
  nexus: { prefill: 50, decode: 50 },
  disaggregated: { prefill: 100, decode: 100 },
  unified: { prefill: 100, decode: 100 },
};

export const DEFAULT_SLO: Slo = { ttft: 2, tpot: 0.1 };

/** Policy ticks with nothing else scheduled after which a run with live requests is declared stalled. */
const STALL_TICKS = 100;

function isThenable<T>(x: T | Promise<T>): x is Promise<T> {
  return typeof (x as { then?: unknown }).then === 'function';
}

/** Keeps the entries of `list` for which `keep` holds, in order, in place. */
function compact<T>(list: T[], keep: (x: T) => boolean): void {
  let j = 0;
  for (let i = 0; i < list.length; i++) if (keep(list[i])) list[j++] = list[i];
  list.length = j;
}

// ---------------------------------------------------------------------------------------------

export class Engine {
  readonly mode: Mode;
  readonly header: TraceHeader;
  readonly blockSize: number;
  readonly shareRule: 'oversubscribe' | 'exact';
  readonly allocatorMode: Allocator;
  readonly slo: Slo;
  now = 0;
  events = 0;

  private readonly model: LatencyModel;
  private readonly executor: StepExecutor;
  private readonly policy: PolicyHandle | null;
  private readonly faults: EngineFaults;
  private readonly pools: BlockPool[];
  private readonly stepAllocEvents: boolean;
  private readonly prefillChunk: number;
  private readonly unifiedChunk: number;
  private readonly maxBatch: number;
  private readonly watermarkBlocks: number;
  private readonly keepOutputs: boolean;
  private readonly wantsHistory: boolean;
  private readonly observationWindow: number;
  private readonly sampleInterval: number;
  private readonly asyncScheduling: boolean;
  private readonly prefixCaching: boolean;
  private readonly decodeAdmitTimeout: number;

  private readonly workload: WorkloadRequest[];
  private readonly seed: number;
  private nextArrival = 0;
  private readonly reqs: Req[] = [];
  private liveCount = 0;
  private endedCount = 0;

  private readonly allWorkers: Worker[] = [];
  private liveWorkers: Worker[] = [];
  private epoch = 0;
  private split: Split;
  private resize: ResizeState | null = null;
  private resizes = 0;
  private preemptions = 0;
  private ignoredSplitDecisions = 0;

  private readonly queue = new MinHeap<SimEvent>((a, b) => a.time < b.time || (a.time === b.time && a.seq < b.seq));
  private seq = 0;
  private order: PrefillOrder = 'fcfs';
  private readonly waiting: MinHeap<Req>;

  private readonly sink: TraceSink | null;
  private tracing: boolean;
  private capture: TraceEvent[] | null = null;
  private readonly pendingSteps: { step: Step; result: Promise<StepResult> }[] = [];

  private idleTicks = 0;
  /** Events queued that can move a request (all but policy ticks and workers becoming ready). */
  private pendingWork = 0;
  private xferSeq = 0;
  private duplicateReleased = false;
  private linkFreeAt = 0;
  /** Z13: utilisation read by each worker at the start of the scheduling pass. */
  private passReadings: Map<Worker, UtilisationReading> | null = null;
  /** Prefix cache: `prefix id, block index` → a free block holding that K/V; and per global block its key. */
  private readonly prefixMap = new Map<string, number>();
  private prefixKeys: (string | null)[] = [];
  private prefixHits = 0;

  // Metrics and the policy's windows.
  private readonly splitTimeline: SplitSample[] = [];
  private readonly occupancy: OccupancySample[] = [];
  private sampleIndex = 0;
  private readonly arrivalTimes: number[] = [];
  private arrivalHead = 0;
  private readonly ttftSamples: { t: number; v: number }[] = [];
  private ttftHead = 0;
  private readonly tpotSamples: { t: number; v: number }[] = [];
  private tpotHead = 0;

  constructor(options: EngineOptions) {
    const o = options;
    this.mode = o.mode;
    if (!['semi-pd', 'nexus', 'disaggregated', 'unified'].includes(o.mode)) throw new EngineConfigError(`unknown mode '${o.mode}' (semi-pd, nexus, disaggregated, unified)`);
    if (!Number.isInteger(o.blocks) || o.blocks < 1) throw new EngineConfigError(`blocks must be an integer ≥ 1, got ${o.blocks}`);
    if (!Number.isInteger(o.blockSize) || o.blockSize < 1) throw new EngineConfigError(`block size must be an integer ≥ 1, got ${o.blockSize}`);
    this.model = latencyModel(o.profile);
    this.executor = o.executor ?? new CostModelExecutor(o.profile);
    this.wantsHistory = this.executor.wantsTokenHistory === true;
    this.policy = o.policy ?? null;
    this.faults = { ...(o.faults ?? {}) };
    this.blockSize = o.blockSize;
    this.shareRule = o.mode === 'nexus' ? 'exact' : 'oversubscribe';
    this.allocatorMode = o.allocator ?? (o.mode === 'semi-pd' ? 'decode-owned' : 'lock');
    if (this.allocatorMode !== 'lock' && this.allocatorMode !== 'decode-owned') throw new EngineConfigError(`allocator must be lock or decode-owned, got '${this.allocatorMode}'`);
    if (o.mode === 'disaggregated' && this.allocatorMode === 'decode-owned') {
      throw new EngineConfigError(`the disaggregated mode has one pool per GPU, each allocated by its own worker: use allocator 'lock'`);
    }
    this.stepAllocEvents = o.allocEvents === 'steps' || this.faults.locklessAllocator === true;
    this.prefillChunk = o.prefillChunk ?? 8192;
    this.unifiedChunk = o.unifiedChunk ?? 1024;
    this.maxBatch = o.maxBatch ?? 256;
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1) throw new EngineConfigError(`prefill chunk must be an integer ≥ 1, got ${this.prefillChunk}`);
    if (!Number.isInteger(this.unifiedChunk) || this.unifiedChunk < 0) throw new EngineConfigError(`unified chunk must be an integer ≥ 0 (0: no chunking), got ${this.unifiedChunk}`);
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new EngineConfigError(`max batch must be an integer ≥ 1, got ${this.maxBatch}`);
    const watermark = o.watermark ?? 0.01;
    if (!(watermark >= 0 && watermark < 1)) throw new EngineConfigError(`watermark must be a fraction in [0, 1), got ${watermark}`);
    this.watermarkBlocks = Math.floor(watermark * o.blocks);
    // An executor that feeds generated tokens back (a model) needs them kept, recordOutputs or not.
    this.keepOutputs = o.recordOutputs === true || this.wantsHistory;
    this.slo = o.slo ?? DEFAULT_SLO;
    this.seed = o.seed ?? 0;
    this.observationWindow = o.observationWindow ?? o.policy?.interval ?? 1;
    if (!(this.observationWindow > 0)) throw new EngineConfigError(`observation window must be > 0 seconds, got ${this.observationWindow}`);
    this.sampleInterval = o.sampleInterval ?? 1;
    if (!(this.sampleInterval > 0)) throw new EngineConfigError(`sample interval must be > 0, got ${this.sampleInterval}`);

    if ((o.mode === 'disaggregated' || o.mode === 'unified') && o.split && (o.split.prefill !== 100 || o.split.decode !== 100)) {
      throw new EngineConfigError(`the ${o.mode} mode has no split to choose (each phase has its whole GPU): got ${o.split.prefill}/${o.split.decode}`);
    }
    const split = o.mode === 'disaggregated' || o.mode === 'unified' ? DEFAULT_SPLIT[o.mode] : (o.split ?? DEFAULT_SPLIT[o.mode]);
    this.checkSplit(split, (m) => new EngineConfigError(m));
    this.split = { prefill: split.prefill, decode: split.decode };
    try {
      this.workload = normalise(o.workload);
    } catch (err) {
      throw new EngineConfigError((err as Error).message);
    }
    this.asyncScheduling = o.asyncScheduling === true;
    this.prefixCaching = o.prefixCaching === true;
    this.decodeAdmitTimeout = o.decodeAdmitTimeout ?? Number.POSITIVE_INFINITY;
    if (!(this.decodeAdmitTimeout >= 0)) throw new EngineConfigError(`decode admission timeout must be ≥ 0 seconds, got ${o.decodeAdmitTimeout}`);
    if (o.decodeAdmitTimeout !== undefined && o.mode !== 'disaggregated') throw new EngineConfigError(`a decode admission timeout applies to the disaggregated mode only`);
    // Forks of a request with n parallel samples are named <id>#1 .. <id>#(n−1).
    const ids = new Set(this.workload.map((r) => r.id));
    for (const r of this.workload) {
      for (let k = 1; k < (r.n ?? 1); k++) if (ids.has(`${r.id}#${k}`)) throw new EngineConfigError(`request '${r.id}' has n = ${r.n}, and its fork id '${r.id}#${k}' is taken by another request`);
    }

    const gpus = o.mode === 'disaggregated' ? 2 : 1;
    const selfCheck = !anyFault(this.faults);
    this.pools = [];
    for (let g = 0; g < gpus; g++) this.pools.push(new BlockPool(g, o.blocks, !this.faults.locklessAllocator, selfCheck));
    if (this.prefixCaching) this.prefixKeys = new Array<string | null>(o.blocks).fill(null);

    const decls =
      o.mode === 'unified'
        ? [{ id: 'U0', role: 'unified' as const, share: 100, gpu: 0 }]
        : [
            { id: 'P0', role: 'prefill' as const, share: this.split.prefill, gpu: 0 },
            { id: 'D0', role: 'decode' as const, share: this.split.decode, gpu: o.mode === 'disaggregated' ? 1 : 0 },
          ];
    for (const d of decls) this.addWorker(new Worker(d.id, d.role, 0, d.share, d.gpu, 'idle'));

    this.header = makeHeader({
      mode: o.mode,
      blocks: o.blocks,
      blockSize: o.blockSize,
      sms: o.profile.gpu.sms,
      split: this.split,
      shareRule: this.shareRule,
      allocator: this.allocatorMode,
      gpus,
      workers: decls,
      source: o.source ?? `pdspec engine (${this.executor.name} executor, profile ${o.profile.name})`,
    });
    this.waiting = new MinHeap<Req>((a, b) => this.waitsBefore(a, b));
    this.sink = o.trace ?? null;
    this.tracing = this.sink !== null;
    this.sink?.header(this.header);
    this.splitTimeline.push({ t: 0, prefill: this.split.prefill, decode: this.split.decode });

    if (this.workload.length > 0) this.push(this.workload[0].arrival, Kind.Arrival, null);
    if (this.policy) this.push(this.policyInterval(), Kind.PolicyTick, null);
  }

  // -------------------------------------------------------------------------------------------
  // Driving the simulation

  /** Whether simulation events remain. */
  get done(): boolean {
    return this.queue.size === 0;
  }

  /**
   * Advances by one simulation event (and the scheduling it enables); returns the trace events it emitted,
   * in order. Returns [] once done. Synchronous executors only (see stepOnceAsync).
   */
  stepOnce(): TraceEvent[] {
    const captured: TraceEvent[] = [];
    this.capture = captured;
    this.tracing = true;
    try {
      this.advance();
      this.requireNoPending();
    } finally {
      this.capture = null;
      this.tracing = this.sink !== null;
    }
    return captured;
  }

  async stepOnceAsync(): Promise<TraceEvent[]> {
    const captured: TraceEvent[] = [];
    this.capture = captured;
    this.tracing = true;
    try {
      this.advance();
      await this.drainPending();
    } finally {
      this.capture = null;
      this.tracing = this.sink !== null;
    }
    return captured;
  }

  /** Runs every event; the executor must be synchronous (the cost model is). */
  runToCompletion(options: { onProgress?: (p: ProgressInfo) => void; progressEvery?: number } = {}): RunResult {
    const every = options.progressEvery ?? 65536;
    let countdown = every;
    while (this.advance()) {
      this.requireNoPending();
      if (options.onProgress && --countdown === 0) {
        countdown = every;
        options.onProgress(this.progress());
      }
    }
    return this.finishRun();
  }

  /** Runs every event, awaiting an asynchronous executor's steps (virtual time waits for them). */
  async runToCompletionAsync(options: { onProgress?: (p: ProgressInfo) => void; progressEvery?: number } = {}): Promise<RunResult> {
    const every = options.progressEvery ?? 65536;
    let countdown = every;
    while (this.advance()) {
      await this.drainPending();
      if (options.onProgress && --countdown === 0) {
        countdown = every;
        options.onProgress(this.progress());
      }
    }
    return this.finishRun();
  }

  progress(): ProgressInfo {
    return { time: this.now, arrived: this.nextArrival, ended: this.endedCount, total: this.workload.length, events: this.events };
  }

  private requireNoPending(): void {
    if (this.pendingSteps.length > 0) throw new ExecutorError(`executor '${this.executor.name}' is asynchronous: use runToCompletionAsync or stepOnceAsync`);
  }

  private async drainPending(): Promise<void> {
    // In begin order, so that step_end events are queued in the same order as with a synchronous executor.
    while (this.pendingSteps.length > 0) {
      const { step, result } = this.pendingSteps.shift()!;
      this.scheduleStepEnd(step, await result);
    }
  }

  private finishRun(): RunResult {
    this.sink?.close();
    return {
      metrics: this.metrics(),
      header: this.header,
      records: this.records(),
      events: this.events,
      endTime: this.now,
      resizes: this.resizes,
      stalled: this.reqs.filter((r) => r.state !== 'finished' && r.state !== 'aborted').map((r) => r.id),
      ignoredSplitDecisions: this.ignoredSplitDecisions,
      policy: this.policy?.name ?? null,
      prefixHits: this.prefixHits,
    };
  }

  private push(time: number, kind: Kind, ref: SimEvent['ref']): void {
    if (kind !== Kind.PolicyTick && kind !== Kind.WorkerReady) this.pendingWork++;
    this.queue.push({ time, seq: this.seq++, kind, ref });
  }

  /** Processes the next simulation event; false when there is none. */
  private advance(): boolean {
    const ev = this.queue.pop();
    if (!ev) return false;
    if (ev.kind !== Kind.PolicyTick && ev.kind !== Kind.WorkerReady) this.pendingWork--;
    this.events++;
    while ((this.sampleIndex + 1) * this.sampleInterval <= ev.time) {
      this.sampleIndex++;
      this.sampleOccupancy(this.sampleIndex * this.sampleInterval);
    }
    this.now = ev.time;
    switch (ev.kind) {
      case Kind.Arrival:
        this.onArrival();
        break;
      case Kind.Abort: {
        // A client abort ends the request and the forks of its parallel samples.
        const r = ev.ref as Req;
        this.abortRequest(r);
        if (r.children) for (const c of r.children) this.abortRequest(c);
        break;
      }
      case Kind.StepEnd:
        this.onStepEnd(ev.ref as Step);
        break;
      case Kind.TransferEnd:
        this.onTransferEnd(ev.ref as Transfer);
        break;
      case Kind.WorkerReady:
        this.onWorkerReady(ev.ref as Worker);
        break;
      case Kind.PolicyTick:
        this.onPolicyTick();
        break;
      case Kind.AdmitTimeout:
        this.onAdmitTimeout(ev.ref as Req);
        break;
    }
    this.schedulePass();
    return true;
  }

  private emit(ev: TraceEvent): void {
    this.sink?.event(ev);
    this.capture?.push(ev);
  }

  // -------------------------------------------------------------------------------------------
  // Workers

  private addWorker(w: Worker): void {
    this.allWorkers.push(w);
    this.liveWorkers.push(w);
  }

  /** The prefill (or unified) worker that admits new work: the newest ready one that is not retiring. */
  private admitter(role: Role): Worker | null {
    for (let i = this.liveWorkers.length - 1; i >= 0; i--) {
      const w = this.liveWorkers[i];
      if (w.role === role && !w.retiring && (w.state === 'idle' || w.state === 'busy')) return w;
    }
    return null;
  }

  /**
   * The decode worker that receives handoffs (and allocates in decode-owned mode): the oldest one still
   * serving, so that during a resize the old decode worker's FIFO keeps its order when it migrates.
   */
  private decodeTarget(): Worker {
    for (const w of this.liveWorkers) if (w.role === 'decode' && (w.state === 'idle' || w.state === 'busy')) return w;
    throw new EngineBugError('no decode worker is serving');
  }

  private otherBusyOnGpu(w: Worker): { coRunning: boolean; busyShares: number } {
    let coRunning = false;
    let busyShares = w.share;
    for (const o of this.liveWorkers) {
      if (o === w || o.gpu !== w.gpu || o.step === null) continue;
      busyShares += o.share;
      if (o.role !== w.role) coRunning = true;
    }
    return { coRunning, busyShares };
  }

  // -------------------------------------------------------------------------------------------
  // Arrivals and the waiting queue

  private waitsBefore(a: Req, b: Req): boolean {
    if (a.waitClass !== b.waitClass) return a.waitClass < b.waitClass;
    if (this.order === 'shortest-prompt-first' && a.waitClass === 1 && a.length !== b.length) return a.length < b.length;
    return a.idx < b.idx;
  }

  private enqueueWaiting(r: Req): void {
    r.state = 'waiting';
    r.inWaiting = true;
    this.waiting.push(r);
  }

  /** The head of the waiting queue (entries that left it, by abort, are dropped lazily). */
  private waitingHead(): Req | undefined {
    let r = this.waiting.peek();
    while (r && !r.inWaiting) {
      this.waiting.pop();
      r = this.waiting.peek();
    }
    return r;
  }

  private onArrival(): void {
    const w = this.workload[this.nextArrival];
    const idx = this.reqs.length;
    const seed = w.seed ?? hash2(this.seed, hashString(w.id));
    const r = new Req(idx, w.id, seed, w.prompt, w.output, w.arrival, w.abortAt ?? Number.POSITIVE_INFINITY, this.pools.length, this.keepOutputs);
    if (w.prefix) this.setPrefix(r, w.prefix.id, w.prefix.length);
    r.forksLeft = (w.n ?? 1) - 1;
    this.reqs.push(r);
    this.liveCount++;
    this.arrivalTimes.push(this.now);
    this.nextArrival++;
    if (this.nextArrival < this.workload.length) this.push(this.workload[this.nextArrival].arrival, Kind.Arrival, null);
    if (this.tracing) this.emit({ t: this.now, ev: 'arrive', req: r.id, prompt: r.prompt, maxTokens: r.maxTokens });
    // A request that cannot fit the pool even alone would wait forever: refuse it now.
    const need = Math.ceil((r.prompt + r.maxTokens - 1) / this.blockSize);
    if (need > this.pools[0].size) {
      r.outcome = 'rejected';
      r.state = 'aborted';
      r.endAt = this.now;
      this.liveCount--;
      this.endedCount++;
      if (this.tracing) this.emit({ t: this.now, ev: 'abort', req: r.id, note: `rejected: needs ${need} blocks, a pool has ${this.pools[0].size}` });
      return;
    }
    if (r.abortAt < Number.POSITIVE_INFINITY) this.push(r.abortAt, Kind.Abort, r);
    this.enqueueWaiting(r);
  }

  // -------------------------------------------------------------------------------------------
  // The allocator: query utilisation → take blocks → update utilisation, under the pool lock

  /**
   * Allocates `count` blocks of `gpu`'s pool to `r`, by `worker`: first the blocks named in `cached` (prefix
   * cache hits, the table's first logical blocks), then blocks from the top of the free list. `shared` (the
   * Z1 fault only) is another request's block appended to the table by reference, not taken from the pool.
   */
  private allocate(worker: Worker, r: Req, gpu: number, count: number, cached: readonly number[] = NONE, shared = -1): void {
    const pool = this.pools[gpu];
    const table = r.blocks[gpu];
    const start = table.length;
    const fresh = count - cached.length - (shared >= 0 ? 1 : 0);
    const open = this.passReadings?.get(worker);
    if (open) {
      // Z13: the reading taken at the start of the pass, without the lock; committed at the end of the pass.
      this.takeBlocks(pool, open, r, cached, fresh, shared, table);
      if (this.tracing) this.emit(this.allocEvent('alloc_take', worker, r, table.slice(start), cached.length));
      return;
    }
    const reading = pool.query(worker.id);
    if (this.tracing && this.stepAllocEvents) this.emit({ t: this.now, ev: 'alloc_query', worker: worker.id });
    this.takeBlocks(pool, reading, r, cached, fresh, shared, table);
    if (this.tracing) this.emit(this.allocEvent(this.stepAllocEvents ? 'alloc_take' : 'alloc', worker, r, table.slice(start), cached.length));
    pool.commit(reading);
    if (this.tracing && this.stepAllocEvents) this.emit({ t: this.now, ev: 'alloc_commit', worker: worker.id });
  }

  private allocEvent(ev: 'alloc' | 'alloc_take', worker: Worker, r: Req, blocks: number[], hits: number): TraceEvent {
    return hits > 0
      ? { t: this.now, ev, worker: worker.id, req: r.id, blocks, note: `prefix cache hit: the first ${hits} block(s)` }
      : { t: this.now, ev, worker: worker.id, req: r.id, blocks };
  }

  private takeBlocks(pool: BlockPool, reading: UtilisationReading, r: Req, cached: readonly number[], fresh: number, shared: number, table: number[]): void {
    for (const b of cached) {
      pool.takeBlock(reading, r.idx, b, table);
      this.unmapPrefix(b);
    }
    const from = table.length;
    pool.take(reading, r.idx, fresh, table);
    // A cached block reissued to another request is evicted from the prefix map (Z2: it is not).
    if (this.prefixCaching && !this.faults.prefixCacheKeepsEvicted) for (let i = from; i < table.length; i++) this.unmapPrefix(table[i]);
    if (shared >= 0) table.push(shared);
  }

  // -------------------------------------------------------------------------------------------
  // The prefix cache (prefixCaching): prefix id and block index → a free block holding that K/V

  private setPrefix(r: Req, id: string, length: number): void {
    r.prefixBlocks = this.prefixCaching ? Math.floor(length / this.blockSize) : 0;
    r.prefixId = r.prefixBlocks > 0 ? id : null;
  }

  private prefixKey(id: string, i: number): string {
    return `${id}\u0000${i}`;
  }

  /** The cache hits for `r`'s admission: the mapped blocks of its prefix, from the first, up to the first miss. */
  private cachedPrefix(r: Req, gpu: number, count: number): readonly number[] {
    if (r.prefixId === null || gpu !== PREFIX_POOL) return NONE;
    let hits: number[] | null = null;
    const n = Math.min(r.prefixBlocks, count);
    for (let i = 0; i < n; i++) {
      const b = this.prefixMap.get(this.prefixKey(r.prefixId, i));
      if (b === undefined) break;
      (hits ??= []).push(b);
    }
    if (hits === null) return NONE;
    this.prefixHits += hits.length;
    return hits;
  }

  /** Freed blocks of `r` that hold computed K/V of its prefix stay mapped while they are free. */
  private cachePrefix(r: Req, blocks: readonly number[]): void {
    const n = Math.min(r.prefixReady, blocks.length);
    for (let i = 0; i < n; i++) {
      const b = blocks[i];
      const key = this.prefixKey(r.prefixId!, i);
      const old = this.prefixMap.get(key);
      if (old !== undefined) this.prefixKeys[old] = null;
      this.unmapPrefix(b);
      this.prefixMap.set(key, b);
      this.prefixKeys[b] = key;
    }
  }

  private unmapPrefix(b: number): void {
    const key = b < this.prefixKeys.length ? this.prefixKeys[b] : null;
    if (key === null || key === undefined) return;
    if (this.prefixMap.get(key) === b) this.prefixMap.delete(key);
    this.prefixKeys[b] = null;
  }

  /** Z13: every serving worker that may allocate reads utilisation at the start of the pass. */
  private openPassReadings(): void {
    this.passReadings = new Map();
    for (const w of this.liveWorkers) {
      if (w.state !== 'idle' || (this.allocatorMode === 'decode-owned' && w.role === 'prefill')) continue;
      this.passReadings.set(w, this.pools[w.gpu].query(w.id));
      if (this.tracing) this.emit({ t: this.now, ev: 'alloc_query', worker: w.id });
    }
  }

  private closePassReadings(): void {
    for (const [w, reading] of this.passReadings!) {
      this.pools[w.gpu].commit(reading);
      if (this.tracing) this.emit({ t: this.now, ev: 'alloc_commit', worker: w.id });
    }
    this.passReadings = null;
  }

  // -------------------------------------------------------------------------------------------
  // Freeing

  /** The free of a request's blocks, every pool, once: emits one `free` per pool that holds some. */
  private freeRequestBlocks(r: Req): void {
    for (let g = 0; g < r.blocks.length; g++) this.freePool(r, g);
    if (r.victimOf) {
      // The deferred free of an asynchronous preemption's victim: its worker may preempt again.
      if (r.victimOf.pendingVictim === r) r.victimOf.pendingVictim = null;
      r.victimOf = null;
    }
  }

  private freePool(r: Req, g: number): void {
    const blocks = r.blocks[g];
    if (blocks.length === 0) return;
    r.blocks[g] = [];
    if (this.tracing) this.emit({ t: this.now, ev: 'free', req: r.id, blocks });
    this.pools[g].release(r.idx, blocks);
    if (g === PREFIX_POOL && r.prefixReady > 0) {
      this.cachePrefix(r, blocks);
      r.prefixReady = 0;
    }
    if (this.faults.duplicateRelease && r.state === 'finished' && !this.duplicateReleased) {
      // Z12: the release path runs a second time (once per run: one duplicate is the bug); the free queue
      // takes every block again, and later allocations hand them out twice.
      this.duplicateReleased = true;
      if (this.tracing) this.emit({ t: this.now, ev: 'free', req: r.id, blocks });
      this.pools[g].release(r.idx, blocks);
    }
  }

  /** A step or transfer that used `r`'s blocks has ended: the deferred free happens now, exactly once. */
  private settle(r: Req): void {
    if (r.inFlight > 0 || !r.settleFree) return;
    r.settleFree = false;
    if (r.state === 'retracting') {
      this.completeRetraction(r);
      return;
    }
    if (this.faults.overlapDoubleFree && r.state === 'finished') {
      // Z8: the request finished while the overlapped step ran (asynchronous scheduling); that step's slot,
      // the last block, is freed ad hoc (left in the table), and the finish path below frees it again.
      for (let g = r.blocks.length - 1; g >= 0; g--) {
        const table = r.blocks[g];
        if (table.length === 0) continue;
        const slot = [table[table.length - 1]];
        if (this.tracing) this.emit({ t: this.now, ev: 'free', req: r.id, blocks: slot });
        this.pools[g].release(r.idx, slot);
        break;
      }
    }
    this.freeRequestBlocks(r);
  }

  // -------------------------------------------------------------------------------------------
  // Request endings

  private endRequest(r: Req, state: 'finished' | 'aborted'): void {
    r.state = state;
    r.outcome = state;
    r.endAt = this.now;
    if (r.server) {
      r.server.load--;
      r.server = null;
    }
    r.tokenOwed = false;
    this.liveCount--;
    this.endedCount++;
  }

  private finishRequest(r: Req): void {
    if (this.tracing) this.emit({ t: this.now, ev: 'finish', req: r.id });
    this.endRequest(r, 'finished');
    this.tpotSamples.push({ t: this.now, v: r.generated > 1 ? (r.lastTokenAt - r.firstTokenAt) / (r.generated - 1) : 0 });
    // Z3: the finish path frees at once, even under the next step (asynchronous scheduling) that still writes them.
    if (r.inFlight > 0 && !this.faults.finishFreesInFlight) r.settleFree = true;
    else this.freeRequestBlocks(r);
  }

  /** The abort path: from any live state; blocks in use by a step or transfer are freed when it ends. */
  private abortRequest(r: Req): void {
    if (r.state === 'finished' || r.state === 'aborted') return;
    if (this.tracing) this.emit({ t: this.now, ev: 'abort', req: r.id });
    const wasHandedOff = r.state === 'handedOff';
    r.inWaiting = false;
    this.endRequest(r, 'aborted');
    const transferInFlight = r.inFlight > 0 && r.awaitingKv;
    if (this.faults.freeTwiceOnAbortedTransfer && transferInFlight) {
      // Z5: reported finished now (its blocks freed, the table kept), and again by the transfer's completion.
      for (let g = 0; g < r.blocks.length; g++) {
        const blocks = r.blocks[g];
        if (blocks.length === 0) continue;
        if (this.tracing) this.emit({ t: this.now, ev: 'free', req: r.id, blocks: blocks.slice() });
        this.pools[g].release(r.idx, blocks);
      }
      r.settleFree = true;
      return;
    }
    if (this.faults.abortFreesDuringTransfer && transferInFlight) {
      // Z11: the decode side drops its blocks while the transfer still writes them.
      const decodeGpu = r.blocks.length - 1;
      this.freePool(r, decodeGpu);
      r.settleFree = true;
      return;
    }
    if (this.faults.abortWaitsForEndedTransfer && r.transferEnded) {
      // Z6: the free waits for the transfer's completion signal, which already came: nothing frees it.
      return;
    }
    if (this.faults.abortForgetsQueuedAfterTransfer && wasHandedOff && r.transferEnded) {
      // Z10: queued at the decode side after its transfer: nobody frees it.
      return;
    }
    if (r.inFlight > 0) r.settleFree = true;
    else this.freeRequestBlocks(r);
  }

  // -------------------------------------------------------------------------------------------
  // Tokens

  private appendToken(r: Req, token: number): void {
    const index = r.generated;
    if (this.tracing) this.emit({ t: this.now, ev: 'token', req: r.id, index, token });
    r.generated = index + 1;
    r.tokenOwed = false;
    r.lastTokenAt = this.now;
    if (index === 0) {
      r.firstTokenAt = this.now;
      this.ttftSamples.push({ t: this.now, v: this.now - r.arrival });
    }
    if (r.outputs) r.outputs.push(token);
  }

  // -------------------------------------------------------------------------------------------
  // Preemption by retraction

  /**
   * The victim on `w`: fewest generated tokens, ties the longest prompt, then the latest arrival. None in
   * flight, except under asynchronous scheduling, where `w` schedules while its step runs.
   */
  private pickVictim(w: Worker): Req | null {
    let best: Req | null = null;
    for (const r of w.running) {
      if (r.state !== 'decoding' || r.server !== w || (r.inFlight > 0 && !this.asyncScheduling)) continue;
      if (r.generated >= r.maxTokens) continue; // asynchronous scheduling: about to finish, its free is on the way
      if (
        best === null ||
        r.generated < best.generated ||
        (r.generated === best.generated && (r.prompt > best.prompt || (r.prompt === best.prompt && r.idx > best.idx)))
      ) {
        best = r;
      }
    }
    return best;
  }

  private preempt(victim: Req, w: Worker): void {
    if (this.tracing) this.emit({ t: this.now, ev: 'preempt', req: victim.id, worker: w.id });
    victim.state = 'retracting';
    victim.server = null;
    w.load--;
    victim.computed = 0;
    victim.tokenOwed = false;
    victim.preemptions++;
    this.preemptions++;
    if (victim.inFlight > 0) {
      // Asynchronous scheduling: the step in flight still uses its blocks; they are freed when it ends.
      victim.settleFree = true;
      victim.victimOf = w;
      w.pendingVictim = victim;
    } else {
      this.completeRetraction(victim);
    }
  }

  /** Frees a retracted request's blocks and puts it back at the head of the waiting queue, every token kept. */
  private completeRetraction(r: Req): void {
    if (this.faults.leakPartialBlockOnRetract) {
      // Z9: the last block, partly filled, is dropped from the table without being freed.
      for (let g = 0; g < r.blocks.length; g++) {
        const b = r.blocks[g];
        if (b.length > 0 && (r.length - 1) % this.blockSize !== 0) b.pop();
      }
    }
    this.freeRequestBlocks(r);
    r.waitClass = 0;
    this.enqueueWaiting(r);
  }

  /**
   * Makes room for `need` more blocks for `r` on `w`'s pool, preempting victims; false if there is no room
   * now (`r` itself retracted, no victim left, or a victim's free still deferred).
   */
  private ensureBlocks(w: Worker, r: Req, need: number): boolean {
    const pool = this.pools[w.gpu];
    while (pool.free < need) {
      // A victim whose blocks the step in flight still uses has freed nothing yet: wait for that free rather
      // than preempt another (Z4: preempt again, and again).
      if (w.pendingVictim !== null && !this.faults.preemptionCascade) return false;
      const victim = this.pickVictim(w);
      if (victim === null) return false;
      this.preempt(victim, w);
      if (victim === r) return false;
    }
    this.allocate(w, r, w.gpu, need);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Admission

  private canAdmit(r: Req, gpu: number): boolean {
    const pool = this.pools[gpu];
    const need = Math.ceil(r.length / this.blockSize);
    return pool.free >= need + (pool.inUse > 0 ? this.watermarkBlocks : 0);
  }

  /** Admits the waiting head to `w`: its blocks (all of its prompt) and the schedule. */
  private admit(r: Req, w: Worker): void {
    this.waiting.pop();
    r.inWaiting = false;
    r.waitClass = 1;
    const allocator = this.allocatorMode === 'decode-owned' && w.role === 'prefill' ? this.decodeTarget() : w;
    const count = Math.ceil(r.length / this.blockSize);
    this.allocate(allocator, r, w.gpu, count, this.prefixCaching ? this.cachedPrefix(r, w.gpu, count) : NONE);
    if (this.tracing) this.emit({ t: this.now, ev: 'schedule', req: r.id, worker: w.id });
    r.state = 'prefilling';
    r.server = w;
    w.load++;
    w.prefilling.push(r);
  }

  // -------------------------------------------------------------------------------------------
  // The scheduling pass: every idle worker gets its next batch

  private schedulePass(): void {
    if (this.faults.locklessAllocator) this.openPassReadings();
    // A later worker of the pass can free blocks (a decode worker finishing requests as it pops its FIFO)
    // that an earlier idle worker was waiting for: go round again until a pass frees nothing, or an idle
    // prefill worker would wait for blocks that are already free, with no event left to wake it.
    for (let rounds = 0; rounds < 8; rounds++) {
      const freeBefore = this.totalFree();
      for (let i = 0; i < this.liveWorkers.length; i++) {
        const w = this.liveWorkers[i];
        if (w.state !== 'idle') continue;
        if (w.role === 'prefill') {
          if (this.mode === 'disaggregated') this.admitTransfers(w);
          this.startPrefill(w);
        } else if (w.role === 'decode') {
          this.startDecode(w);
        } else {
          this.startUnified(w);
        }
      }
      if (this.totalFree() <= freeBefore) break;
    }
    if (this.passReadings) this.closePassReadings();
  }

  private totalFree(): number {
    let free = 0;
    for (const p of this.pools) free += p.free;
    return free;
  }

  private startPrefill(w: Worker): void {
    if (w.retiring) return;
    const reqs: Req[] = [];
    const toks: number[] = [];
    let left = this.prefillChunk;
    compact(w.prefilling, (r) => r.state === 'prefilling' && r.server === w);
    for (const r of w.prefilling) {
      if (left === 0) break;
      const n = Math.min(r.length - r.computed, left);
      reqs.push(r);
      toks.push(n);
      left -= n;
    }
    if (w === this.admitter('prefill')) {
      for (let head = this.waitingHead(); head && left > 0 && this.canAdmit(head, w.gpu); head = this.waitingHead()) {
        this.admit(head, w);
        const n = Math.min(head.length, left);
        reqs.push(head);
        toks.push(n);
        left -= n;
      }
    }
    if (reqs.length > 0) this.beginStep(w, reqs, toks, new Array(reqs.length).fill(0));
  }

  private startDecode(w: Worker): void {
    if (w.retiring) return;
    const reqs = this.decodeBatch(w);
    if (reqs.length === 0) return;
    this.beginStep(w, reqs, new Array(reqs.length).fill(1), new Array(reqs.length).fill(1));
    if (this.asyncScheduling) this.prescheduleDecode(w);
  }

  /** The next decode batch of `w`: its FIFO popped into the running batch, each item with room for its next position. */
  private decodeBatch(w: Worker): Req[] {
    compact(w.running, (r) => r.state === 'decoding' && r.server === w);
    const reqs: Req[] = [];
    // Retracting the whole batch frees room in it: pop the FIFO again rather than sit idle (but not when
    // nobody was retracted: the batch is empty because a victim's free is still deferred).
    while (this.popFifo(w)) {
      const before = this.preemptions;
      this.addDecodeItems(w, reqs);
      if (reqs.length > 0 || this.preemptions === before) break;
    }
    return reqs;
  }

  /**
   * Asynchronous scheduling: while `w`'s step N runs, schedule step N + 1 (requests in step N will have one
   * more position by then). Victims preempted now may be in step N: their free waits for it to end.
   */
  private prescheduleDecode(w: Worker): void {
    const next = this.decodeBatch(w);
    w.nextBatch = next.length > 0 ? next : null;
  }

  /**
   * Asynchronous scheduling, at the end of `w`'s step N (its tokens appended): launch step N + 1 (a decode
   * worker the batch it scheduled while step N ran; a unified worker the batch it builds now), then process
   * step N's stop conditions (`due`: requests that reached their limit, which are in step N + 1 and so free
   * their blocks when it ends), then (decode) schedule step N + 2 while step N + 1 runs.
   */
  private launchNext(w: Worker, due: Req[] | null): void {
    if (w.role === 'unified') {
      this.startUnified(w);
      if (due !== null) for (const r of due) if (r.state === 'decoding') this.finishRequest(r);
      return;
    }
    const next = w.nextBatch;
    w.nextBatch = null;
    let launched = false;
    if (next !== null && !w.retiring) {
      compact(next, (r) => r.state === 'decoding' && r.server === w);
      if (next.length > 0) {
        this.beginStep(w, next, new Array(next.length).fill(1), new Array(next.length).fill(1));
        launched = true;
      }
    }
    if (due !== null) for (const r of due) if (r.state === 'decoding') this.finishRequest(r);
    if (launched) this.prescheduleDecode(w);
  }

  /**
   * Pops `w`'s FIFO into its running batch while there is room: the first token is appended as the request
   * joins. Returns whether the batch has anyone to run.
   */
  private popFifo(w: Worker): boolean {
    while (w.fifo.length > 0 && w.running.length < this.maxBatch) {
      const r = w.fifo[0];
      if (r.state !== 'handedOff' || r.server !== w) {
        w.fifo.shift(); // left by abort or migration
        continue;
      }
      if (r.awaitingKv || r.inFlight > 0) break; // its KV is still on the way (disaggregated)
      w.fifo.shift();
      if (r.tokenOwed) this.appendToken(r, r.pendingToken);
      if (this.tracing) this.emit({ t: this.now, ev: 'join', req: r.id, worker: w.id });
      r.state = 'decoding';
      if (r.generated >= r.maxTokens) this.finishRequest(r);
      else w.running.push(r);
    }
    return w.running.length > 0;
  }

  /** The decode items of `w`'s running batch, each with room for one more position (preempting if needed). */
  private addDecodeItems(w: Worker, reqs: Req[]): void {
    const T = this.blockSize;
    const gpu = w.gpu;
    const preemptionsBefore = this.preemptions;
    const running = w.running;
    for (let i = 0; i < running.length && reqs.length < this.maxBatch; i++) {
      const r = running[i];
      if (r.state !== 'decoding') continue; // retracted earlier in this loop
      // Under asynchronous scheduling a request in the step in flight will have one more position computed.
      const ahead = r.inFlight > 0 ? 1 : 0;
      const need = Math.ceil((r.computed + ahead + 1) / T) - r.blocks[gpu].length;
      if (need > 0) {
        if (r.generated + ahead >= r.maxTokens) {
          // Asynchronous scheduling: a position past the output limit (its stop not processed yet) gets free
          // blocks if there are any, but nobody is preempted for it.
          if (this.pools[gpu].free < need) continue;
          this.allocate(w, r, gpu, need);
        } else if (!this.ensureBlocks(w, r, need)) continue;
      }
      reqs.push(r);
    }
    if (this.preemptions !== preemptionsBefore) {
      // A victim may already have joined the batch: it leaves it.
      compact(reqs, (r) => r.state === 'decoding');
      compact(running, (r) => r.state === 'decoding' && r.server === w);
    }
  }

  private startUnified(w: Worker): void {
    compact(w.running, (r) => r.state === 'decoding' && r.server === w);
    compact(w.prefilling, (r) => r.state === 'prefilling' && r.server === w);
    const reqs: Req[] = [];
    const toks: number[] = [];
    const flags: number[] = [];
    const preemptionsBefore = this.preemptions;
    if (this.unifiedChunk === 0) {
      // vLLM without chunked prefill: a step is all prefill (whole prompts, prefill first) or all decode.
      this.addWholePrompts(w, reqs, toks, flags);
      if (reqs.length === 0) {
        this.addDecodeItems(w, reqs);
        for (let i = 0; i < reqs.length; i++) {
          toks.push(1);
          flags.push(1);
        }
        // Retracting the whole batch may have made room for a prompt.
        if (reqs.length === 0 && this.preemptions !== preemptionsBefore) this.addWholePrompts(w, reqs, toks, flags);
      }
    } else {
      // SplitFuse: decode tokens first, then prompt chunks up to the step's token budget.
      this.addDecodeItems(w, reqs);
      for (let i = 0; i < reqs.length; i++) {
        toks.push(1);
        flags.push(1);
      }
      let left = Math.max(0, this.unifiedChunk - reqs.length);
      for (const r of w.prefilling) {
        if (left === 0) break;
        const n = Math.min(r.length - r.computed, left);
        reqs.push(r);
        toks.push(n);
        flags.push(0);
        left -= n;
      }
      for (let head = this.waitingHead(); head && left > 0 && this.canAdmit(head, w.gpu) && this.hasBatchRoom(w); head = this.waitingHead()) {
        this.admit(head, w);
        const n = Math.min(head.length, left);
        reqs.push(head);
        toks.push(n);
        flags.push(0);
        left -= n;
      }
    }
    if (reqs.length > 0) this.beginStep(w, reqs, toks, flags);
  }

  /** vLLM-D: admits whole prompts, the first whatever its length, then more while they fit the prefill budget. */
  private addWholePrompts(w: Worker, reqs: Req[], toks: number[], flags: number[]): void {
    let left = this.prefillChunk;
    // Requests already given to this worker (a fork's copy) go first, whole.
    for (const r of w.prefilling) {
      if (r.state !== 'prefilling' || r.server !== w) continue;
      reqs.push(r);
      toks.push(r.length - r.computed);
      flags.push(0);
      left -= r.length - r.computed;
    }
    for (let head = this.waitingHead(); head && this.canAdmit(head, w.gpu) && this.hasBatchRoom(w); head = this.waitingHead()) {
      if (reqs.length > 0 && head.length > left) break;
      this.admit(head, w);
      reqs.push(head);
      toks.push(head.length);
      flags.push(0);
      left -= head.length;
    }
  }

  /** Unified: room for one more request among decoding and prefilling ones. */
  private hasBatchRoom(w: Worker): boolean {
    return w.running.length + w.prefilling.length < this.maxBatch;
  }

  // -------------------------------------------------------------------------------------------
  // Steps

  private beginStep(w: Worker, reqs: Req[], toks: number[], decode: number[]): void {
    const id = String(++w.stepSeq);
    const step = new Step(id, w, reqs, toks, decode);
    const items: StepItem[] = new Array(reqs.length);
    let prefillTokens = 0;
    let pairs = 0;
    let decodeItems = 0;
    let context = 0;
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i];
      const n = toks[i];
      const start = r.computed;
      if (decode[i] === 1) {
        decodeItems++;
        context += start + 1;
      } else {
        prefillTokens += n;
        pairs += n * start + (n * (n + 1)) / 2;
      }
      items[i] = {
        req: r.id,
        seed: r.seed,
        prompt: r.prompt,
        phase: decode[i] === 1 ? 'decode' : 'prefill',
        startPos: start,
        tokens: n,
        producesToken: start + n === r.length,
        blockTable: r.blocks[w.gpu],
        generated: this.wantsHistory ? r.outputs : null,
      };
      r.inFlight++;
    }
    const { coRunning, busyShares } = this.otherBusyOnGpu(w);
    w.step = step;
    w.state = 'busy';
    if (this.tracing) {
      const batch: BatchItem[] = new Array(reqs.length);
      for (let i = 0; i < reqs.length; i++) batch[i] = { req: reqs[i].id, tokens: toks[i] };
      this.emit({ t: this.now, ev: 'step_begin', worker: w.id, step: id, batch });
    }
    const spec: StepSpec = {
      worker: w.id,
      role: w.role,
      gpu: w.gpu,
      share: w.share,
      // Oversubscribed shares (semi-PD's MPS, 80 + 100) are scaled down while both run.
      effectiveShare: busyShares > 100 ? (w.share * 100) / busyShares : w.share,
      coRunning,
      items,
      prefillTokens,
      attentionPairs: pairs,
      decodeItems,
      contextTokens: context,
    };
    const result = this.executor.execute(spec);
    if (isThenable(result)) this.pendingSteps.push({ step, result });
    else this.scheduleStepEnd(step, result);
  }

  private scheduleStepEnd(step: Step, result: StepResult): void {
    if (!(result.duration > 0) || !Number.isFinite(result.duration)) {
      throw new ExecutorError(`executor '${this.executor.name}' gave step ${step.id} of ${step.worker.id} a duration of ${result.duration}; it must be finite and > 0`);
    }
    if (result.tokens.length !== step.reqs.length) {
      throw new ExecutorError(`executor '${this.executor.name}' returned ${result.tokens.length} token(s) for a step of ${step.reqs.length} item(s)`);
    }
    step.result = result;
    this.push(this.now + result.duration, Kind.StepEnd, step);
  }

  private onStepEnd(step: Step): void {
    const w = step.worker;
    const tokens = step.result!.tokens;
    w.step = null;
    w.state = 'idle';
    if (this.tracing) this.emit({ t: this.now, ev: 'step_end', worker: w.id, step: step.id });
    const { reqs, tokens: counts, decode } = step;
    const overlap = this.asyncScheduling && w.role !== 'prefill';
    let due: Req[] | null = null;
    let prefillDone = false;
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i];
      r.inFlight--;
      if (r.state !== 'decoding' && r.state !== 'prefilling') {
        // Aborted, finished (asynchronous scheduling) or retracted while the step ran: its result is
        // discarded; the deferred free happens now.
        this.settle(r);
        continue;
      }
      if (decode[i] === 1) {
        r.computed++;
        this.appendToken(r, tokens[i]);
        if (r.generated >= r.maxTokens) {
          // Asynchronous scheduling processes stop conditions after launching the next step.
          if (overlap) (due ??= []).push(r);
          else this.finishRequest(r);
        }
      } else {
        r.computed += counts[i];
        if (r.prefixBlocks > 0) r.prefixReady = Math.min(r.prefixBlocks, Math.floor(r.computed / this.blockSize));
        if (r.computed === r.length) {
          r.state = 'prefilled';
          r.tokenOwed = true;
          r.pendingToken = tokens[i];
          prefillDone = true;
          if (r.forksLeft > 0 && r.generated === 0) this.forkRequest(r, w);
          if (this.afterPrefill(r, w, overlap)) (due ??= []).push(r);
        }
      }
    }
    if (overlap) this.launchNext(w, due);
    if (prefillDone) compact(w.prefilling, (r) => r.state === 'prefilling' && r.server === w);
    if (w.retiring) this.retireWorker(w);
  }

  /**
   * A request's prefill completed on `w`: hand it to decode (semi-PD, Nexus), queue its transfer, or join
   * (unified). Returns true when its stop condition is left to the asynchronous scheduler (`overlap`).
   */
  private afterPrefill(r: Req, w: Worker, overlap: boolean): boolean {
    switch (this.mode) {
      case 'semi-pd':
      case 'nexus': {
        const d = this.decodeTarget();
        if (this.tracing) this.emit({ t: this.now, ev: 'handoff', req: r.id, from: w.id, to: d.id });
        r.state = 'handedOff';
        r.server = d;
        w.load--;
        d.load++;
        d.fifo.push(r);
        return false;
      }
      case 'disaggregated':
        // The prefill instance returns the first token.
        this.appendToken(r, r.pendingToken);
        if (r.generated >= r.maxTokens) this.finishRequest(r);
        else {
          w.pendingTransfer.push(r);
          if (this.decodeAdmitTimeout < Number.POSITIVE_INFINITY) this.push(this.now + this.decodeAdmitTimeout, Kind.AdmitTimeout, r);
        }
        return false;
      case 'unified':
        this.appendToken(r, r.pendingToken);
        if (r.generated >= r.maxTokens && !overlap) {
          this.finishRequest(r);
          return false;
        }
        if (this.tracing) this.emit({ t: this.now, ev: 'join', req: r.id, worker: w.id });
        r.state = 'decoding';
        w.running.push(r);
        return r.generated >= r.maxTokens;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Parallel samples (n > 1): the fork

  /**
   * `parent`'s prompt has just been prefilled on `w` for the first time: fork its n − 1 parallel samples.
   * The spec has one owner per block, so a fork copies: each child arrives, is allocated blocks of its own
   * for the prompt, and is scheduled on `w`, whose next prefill step writes the copy (the child has the
   * parent's seed, so it holds the same prompt and the same K/V; the cost model prices the copy as a
   * prefill). A child the pool has no room for now waits at the head of the queue and is recomputed.
   */
  private forkRequest(parent: Req, w: Worker): void {
    const n = parent.forksLeft + 1;
    parent.children = [];
    for (let k = 1; k < n; k++) {
      const c = new Req(this.reqs.length, `${parent.id}#${k}`, parent.seed, parent.prompt, parent.maxTokens, parent.arrival, Number.POSITIVE_INFINITY, this.pools.length, this.keepOutputs);
      if (parent.prefixId !== null) {
        c.prefixId = parent.prefixId;
        c.prefixBlocks = parent.prefixBlocks;
      }
      this.reqs.push(c);
      parent.children.push(c);
      this.liveCount++;
      if (this.tracing) this.emit({ t: this.now, ev: 'arrive', req: c.id, prompt: c.prompt, maxTokens: c.maxTokens, note: `fork ${k} of ${parent.id} (n = ${n})` });
      const table = parent.blocks[w.gpu];
      const count = Math.ceil(c.length / this.blockSize);
      if (this.pools[w.gpu].free < count || table.length !== count) {
        c.waitClass = 0;
        this.enqueueWaiting(c);
        continue;
      }
      const allocator = this.allocatorMode === 'decode-owned' && w.role === 'prefill' ? this.decodeTarget() : w;
      // Z1: the last block is shared with the parent (both tables hold it) instead of copied.
      if (this.faults.forkSharesLastBlock) this.allocate(allocator, c, w.gpu, count, NONE, table[table.length - 1]);
      else this.allocate(allocator, c, w.gpu, count);
      if (this.tracing) this.emit({ t: this.now, ev: 'schedule', req: c.id, worker: w.id });
      c.state = 'prefilling';
      c.server = w;
      w.load++;
      w.prefilling.push(c);
    }
    parent.forksLeft = 0;
  }

  // -------------------------------------------------------------------------------------------
  // Disaggregated: decode-side pre-allocation, one KV transfer per request

  /** `decodeAdmitTimeout` after `r` was prefilled: if it still waits for decode-side blocks, the decode side rejects it. */
  private onAdmitTimeout(r: Req): void {
    if (r.state !== 'prefilled' || r.server === null || r.server.role !== 'prefill') return;
    this.rejectAtDecode(r);
  }

  /**
   * The decode side rejects a prefilled request it could not admit: the request ends (`abort`), and the
   * prefill side, told so, frees the blocks that held its KV for the transfer (Z7: it is never told).
   */
  private rejectAtDecode(r: Req): void {
    if (this.tracing) this.emit({ t: this.now, ev: 'abort', req: r.id, note: `rejected by the decode side: no blocks within ${this.decodeAdmitTimeout} s` });
    this.endRequest(r, 'aborted');
    r.outcome = 'rejected';
    if (!this.faults.rejectionNotTold) this.freeRequestBlocks(r);
  }

  private admitTransfers(p: Worker): void {
    const queue = p.pendingTransfer;
    while (queue.length > 0) {
      const r = queue[0];
      if (r.state !== 'prefilled' || r.server !== p) {
        queue.shift();
        continue;
      }
      const d = this.decodeTarget();
      const need = Math.ceil(r.computed / this.blockSize);
      const pool = this.pools[d.gpu];
      if (pool.free < need + (pool.inUse > 0 ? this.watermarkBlocks : 0)) break; // wait for decode-side room
      queue.shift();
      this.allocate(d, r, d.gpu, need);
      if (this.tracing) this.emit({ t: this.now, ev: 'handoff', req: r.id, from: p.id, to: d.id });
      r.state = 'handedOff';
      r.server = d;
      r.awaitingKv = true;
      p.load--;
      d.load++;
      d.fifo.push(r);
      const x = new Transfer(String(++this.xferSeq), r, p, d);
      if (this.tracing) this.emit({ t: this.now, ev: 'transfer_begin', xfer: x.id, req: r.id, from: p.id, to: d.id });
      r.inFlight++;
      // One link: transfers queue behind each other, so they complete in FIFO order.
      const start = this.linkFreeAt > this.now ? this.linkFreeAt : this.now;
      this.linkFreeAt = start + this.executor.transferTime(r.computed);
      this.push(this.linkFreeAt, Kind.TransferEnd, x);
    }
  }

  private onTransferEnd(x: Transfer): void {
    const r = x.req;
    r.inFlight--;
    r.transferEnded = true;
    const cancelled = r.state === 'aborted';
    if (this.tracing) this.emit(cancelled ? { t: this.now, ev: 'transfer_end', xfer: x.id, outcome: 'cancelled' } : { t: this.now, ev: 'transfer_end', xfer: x.id });
    if (cancelled) {
      this.settle(r);
      return;
    }
    r.awaitingKv = false;
    // The prefill side's copy is no longer needed.
    this.freePool(r, x.from.gpu);
  }

  // -------------------------------------------------------------------------------------------
  // Resize: delayed switch, then asynchronous switch

  private beginResize(split: Split): void {
    const epoch = this.epoch + 1;
    if (this.tracing) this.emit({ t: this.now, ev: 'resize_begin', epoch, prefill: split.prefill, decode: split.decode });
    const olds = this.liveWorkers.filter((w) => w.epoch === this.epoch);
    const news: Worker[] = [];
    const init = this.executor.workerInitTime(this.mode === 'nexus' ? 'nexus' : 'semi-pd');
    for (const old of olds) {
      const share = old.role === 'prefill' ? split.prefill : split.decode;
      const w = new Worker(`${old.role === 'prefill' ? 'P' : 'D'}${epoch}`, old.role, epoch, share, old.gpu, 'starting');
      this.addWorker(w);
      news.push(w);
      if (this.tracing) this.emit({ t: this.now, ev: 'worker_start', worker: w.id, role: w.role, epoch, share, gpu: w.gpu });
      this.push(this.now + init, Kind.WorkerReady, w);
    }
    this.resize = { epoch, split: { ...split }, phase: 'initialising', olds, news, ready: 0 };
    this.resizes++;
  }

  private onWorkerReady(w: Worker): void {
    const rs = this.resize!;
    if (this.tracing) this.emit({ t: this.now, ev: 'worker_ready', worker: w.id });
    w.state = 'idle';
    rs.ready++;
    if (rs.ready < rs.news.length) return;
    // Every new worker is ready: the old ones hand over, each after its own current iteration.
    rs.phase = 'switching';
    for (const old of rs.olds) {
      old.retiring = true;
      if (old.step === null) this.retireWorker(old);
    }
  }

  /** Resize migration: an old worker hands its requests, in order, to its successor, then stops. */
  private retireWorker(w: Worker): void {
    const rs = this.resize!;
    const successor = rs.news.find((n) => n.role === w.role)!;
    const move = (r: Req) => {
      if (this.tracing) this.emit({ t: this.now, ev: 'migrate', req: r.id, from: w.id, to: successor.id });
      r.server = successor;
      w.load--;
      successor.load++;
    };
    if (w.role === 'prefill') {
      for (const r of w.prefilling) if (r.state === 'prefilling' && r.server === w) {
        move(r);
        successor.prefilling.push(r);
      }
      w.prefilling = [];
    } else {
      w.nextBatch = null;
      for (const r of w.running) if (r.state === 'decoding' && r.server === w) {
        move(r);
        successor.running.push(r);
      }
      w.running = [];
      if (!this.faults.dropFifoOnResize) {
        // FIFO entries keep their order behind whatever the successor already queued.
        for (const r of w.fifo) if (r.state === 'handedOff' && r.server === w) {
          move(r);
          successor.fifo.push(r);
        }
        w.fifo = [];
      }
    }
    if (this.tracing) this.emit({ t: this.now, ev: 'worker_stop', worker: w.id });
    w.state = 'stopped';
    w.retiring = false;
    this.liveWorkers = this.liveWorkers.filter((x) => x !== w);
    if (rs.olds.every((o) => o.state === 'stopped')) {
      if (this.tracing) this.emit({ t: this.now, ev: 'resize_end', epoch: rs.epoch });
      this.epoch = rs.epoch;
      this.split = rs.split;
      this.resize = null;
      this.splitTimeline.push({ t: this.now, prefill: this.split.prefill, decode: this.split.decode });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Policy

  private policyInterval(): number {
    const interval = this.policy?.interval ?? 1;
    if (!(interval > 0) || !Number.isFinite(interval)) throw new InvalidDecisionError(`policy '${this.policy?.name}' has interval ${interval}; it must be a finite number of seconds > 0`);
    return interval;
  }

  private hasWork(): boolean {
    return this.nextArrival < this.workload.length || this.liveCount > 0;
  }

  private onPolicyTick(): void {
    if (!this.hasWork()) return; // the run is over: no more ticks
    // Live requests, yet nothing but this tick (and workers of a resize becoming ready, which move no
    // request) was scheduled for many intervals: nothing can move them (a deadlock, or a request dropped by
    // an injected fault). Stop ticking so that the run ends, even under a policy that keeps resizing; the
    // result reports the requests still live, and the trace fails quiescence.
    this.idleTicks = this.pendingWork === 0 ? this.idleTicks + 1 : 0;
    if (this.idleTicks >= STALL_TICKS) return;
    const decision = this.policy!.decide(this.observation());
    this.applyDecision(decision);
    this.push(this.now + this.policyInterval(), Kind.PolicyTick, null);
  }

  private checkSplit(split: Split, error: (m: string) => Error): void {
    const ok = (s: unknown) => typeof s === 'number' && Number.isInteger(s) && s >= 1 && s <= 100;
    if (split === null || typeof split !== 'object' || !ok(split.prefill) || !ok(split.decode)) {
      throw error(`split must have integer shares in 1..100, got ${JSON.stringify(split)}`);
    }
    if (this.shareRule === 'exact' && split.prefill + split.decode !== 100) {
      throw error(`split ${split.prefill}/${split.decode} breaks the exact share rule of ${this.mode} (prefill + decode = 100)`);
    }
  }

  /** Applies a decision: a changed split starts a resize; prefillOrder reorders the waiting queue. */
  applyDecision(decision: Decision): void {
    if (decision === null || typeof decision !== 'object') throw new InvalidDecisionError(`policy returned ${JSON.stringify(decision)}, not a decision object`);
    if (decision.prefillOrder !== undefined) {
      if (decision.prefillOrder !== 'fcfs' && decision.prefillOrder !== 'shortest-prompt-first') {
        throw new InvalidDecisionError(`prefillOrder must be 'fcfs' or 'shortest-prompt-first', got ${JSON.stringify(decision.prefillOrder)}`);
      }
      if (decision.prefillOrder !== this.order) {
        this.order = decision.prefillOrder;
        this.waiting.heapify();
      }
    }
    const split = decision.split;
    if (split === undefined) return;
    if (this.mode === 'disaggregated' || this.mode === 'unified') {
      if (split.prefill !== this.split.prefill || split.decode !== this.split.decode) this.ignoredSplitDecisions++;
      return;
    }
    this.checkSplit(split, (m) => new InvalidDecisionError(`policy '${this.policy?.name ?? '?'}': ${m}`));
    const target = this.resize ? this.resize.split : this.split;
    if (split.prefill === target.prefill && split.decode === target.decode) return;
    if (this.resize) {
      this.ignoredSplitDecisions++; // one resize at a time; the next decision will ask again
      return;
    }
    if (split.prefill === this.split.prefill && split.decode === this.split.decode) return;
    this.beginResize(split);
  }

  /**
   * A client aborts a request now (property campaigns inject aborts between any two engine events); false
   * when the request has not arrived or has ended.
   */
  abortNow(id: string): boolean {
    const r = this.reqs.find((q) => q.id === id);
    if (!r || r.state === 'finished' || r.state === 'aborted') return false;
    this.push(this.now, Kind.Abort, r);
    return true;
  }

  /** The policy's view of the system now (engine/policy-api.ts). */
  observation(): Observation {
    // The prefill queue in the order it will be served: requests part-way through a chunked prefill first,
    // then the waiting queue. promptLengths are full lengths (prompt + generated for a recompute).
    let queued = 0;
    let queuedTokens = 0;
    const promptLengths: number[] = [];
    let decoding = 0;
    let context = 0;
    for (const w of this.liveWorkers) {
      for (const r of w.prefilling) {
        if (r.state !== 'prefilling' || r.server !== w) continue;
        queued++;
        queuedTokens += r.length - r.computed;
        promptLengths.push(r.length);
      }
      for (const r of w.running) {
        if (r.state !== 'decoding' || r.server !== w) continue;
        decoding++;
        context += r.computed;
      }
      for (const r of w.fifo) {
        if (r.state !== 'handedOff' || r.server !== w) continue;
        decoding++;
        context += r.computed;
      }
    }
    for (const r of this.waiting.sorted()) {
      if (!r.inWaiting) continue;
      queued++;
      queuedTokens += r.length;
      promptLengths.push(r.length);
    }
    const cutoff = this.now - this.observationWindow;
    while (this.arrivalHead < this.arrivalTimes.length && this.arrivalTimes[this.arrivalHead] < cutoff) this.arrivalHead++;
    while (this.ttftHead < this.ttftSamples.length && this.ttftSamples[this.ttftHead].t < cutoff) this.ttftHead++;
    while (this.tpotHead < this.tpotSamples.length && this.tpotSamples[this.tpotHead].t < cutoff) this.tpotHead++;
    const span = Math.min(this.observationWindow, this.now);
    let used = 0;
    let size = 0;
    for (const p of this.pools) {
      used += p.inUse;
      size += p.size;
    }
    return {
      time: this.now,
      split: { ...this.split },
      shareRule: this.shareRule,
      prefillQueue: { requests: queued, tokens: queuedTokens, promptLengths },
      decodeBatch: { requests: decoding, contextTokens: context },
      kvUsage: used / size,
      arrivalRate: span > 0 ? (this.arrivalTimes.length - this.arrivalHead) / span : 0,
      ttft: percentiles(this.ttftSamples.slice(this.ttftHead).map((s) => s.v)),
      tpot: percentiles(this.tpotSamples.slice(this.tpotHead).filter((s) => s.v > 0).map((s) => s.v)),
      slo: { ...this.slo },
      model: this.model,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Observability

  private sampleOccupancy(t: number): void {
    let used = 0;
    let size = 0;
    for (const p of this.pools) {
      used += p.inUse;
      size += p.size;
    }
    this.occupancy.push({ t, used: used / size });
  }

  /** The observable state in the spec's vocabulary. O(blocks + requests + workers). */
  observe(): EngineView {
    const blocks: (string | null)[] = [];
    for (const p of this.pools) for (let i = 0; i < p.size; i++) blocks.push(p.owner[i] === NO_OWNER ? null : this.reqs[p.owner[i]].id);
    const requests: Record<string, RequestView> = {};
    for (const r of this.reqs) {
      requests[r.id] = { state: r.state, server: r.server?.id ?? null, generated: r.generated, computed: r.computed, blocks: r.blocks.flat() };
    }
    const workers: Record<string, WorkerView> = {};
    for (const w of this.allWorkers) {
      workers[w.id] = {
        role: w.role,
        epoch: w.epoch,
        share: w.share,
        gpu: w.gpu,
        state: w.state,
        // Across GPUs the decode side waits on transfers, not on an ordered FIFO (its own queue is an order it
        // chooses, not one the protocol imposes).
        fifo: this.mode === 'disaggregated' ? [] : w.fifo.filter((r) => r.state === 'handedOff' && r.server === w).map((r) => r.id),
        load: w.load,
      };
    }
    const steps: EngineView['inFlight']['steps'] = [];
    for (const w of this.allWorkers) if (w.step) steps.push({ worker: w.id, step: w.step.id, reqs: w.step.reqs.map((r) => r.id) });
    const transfers: EngineView['inFlight']['transfers'] = [];
    for (const ev of this.queue.values()) if (ev.kind === Kind.TransferEnd) transfers.push({ xfer: (ev.ref as Transfer).id, req: (ev.ref as Transfer).req.id });
    transfers.sort((a, b) => Number(a.xfer) - Number(b.xfer));
    return {
      time: this.now,
      epoch: this.epoch,
      split: { ...this.split },
      resize: this.resize ? { epoch: this.resize.epoch, phase: this.resize.phase, split: { ...this.resize.split } } : null,
      blocks,
      requests,
      workers,
      waiting: this.waiting.sorted().filter((r) => r.inWaiting).map((r) => r.id),
      inFlight: { steps, transfers },
    };
  }

  /** Each arrived request's output tokens (when recordOutputs is on). */
  outputs(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const r of this.reqs) if (r.outputs) out.set(r.id, r.outputs.slice());
    return out;
  }

  records(): RequestRecord[] {
    return this.reqs.map((r) => ({
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

  metrics(): RunMetrics {
    return summarize(this.records(), this.slo, { splitTimeline: this.splitTimeline.slice(), kvOccupancy: this.occupancy.slice() });
  }

  /**
   * The engine's own bookkeeping, cross-checked (O(blocks + requests)): every block free or owned by the
   * request whose table holds it, free + owned = pool size, worker loads equal the requests they serve,
   * the live count. Returns the problems found, none when consistent. For tests and debugging.
   */
  checkBookkeeping(): string[] {
    return this.bookkeepingProblems().map((p) => p.message);
  }

  /**
   * The engine's books against each other, each problem named by the safety rule (the trace vocabulary) it
   * breaks in the engine's own state: a block in no table and not free is lost (BlocksAccounted), a block
   * in two tables has two owners (SingleOwner), a request served by a stopped worker is dropped
   * (ServedByLiveWorker); counts that disagree are the engine's own inconsistency (Bookkeeping).
   */
  bookkeepingProblems(): { rule: string; message: string }[] {
    const problems: { rule: string; message: string }[] = [];
    for (const pool of this.pools) {
      let owned = 0;
      for (const r of this.reqs) {
        for (const b of r.blocks[pool.gpu]) {
          owned++;
          if (pool.owner[b - pool.base] !== r.idx) problems.push({ rule: 'SingleOwner', message: `block ${b} is in ${r.id}'s table but owned by #${pool.owner[b - pool.base]}` });
        }
      }
      if (owned + pool.free !== pool.size)
        problems.push({ rule: owned + pool.free < pool.size ? 'BlocksAccounted' : 'FreeListUnique', message: `pool ${pool.gpu}: ${owned} owned + ${pool.free} free ≠ ${pool.size}` });
      for (let i = 0; i < pool.size; i++) {
        const o = pool.owner[i];
        if (o !== NO_OWNER && !this.reqs[o].blocks[pool.gpu].includes(pool.base + i)) problems.push({ rule: 'BlocksAccounted', message: `block ${pool.base + i} is owned by ${this.reqs[o].id}, not in its table` });
      }
    }
    const loads = new Map<Worker, number>();
    let live = 0;
    for (const r of this.reqs) {
      if (r.state !== 'finished' && r.state !== 'aborted') live++;
      if (r.server) loads.set(r.server, (loads.get(r.server) ?? 0) + 1);
      if (r.server && r.server.state === 'stopped') problems.push({ rule: 'ServedByLiveWorker', message: `${r.id} is served by ${r.server.id}, which has stopped` });
    }
    for (const w of this.allWorkers) if ((loads.get(w) ?? 0) !== w.load) problems.push({ rule: 'Bookkeeping', message: `worker ${w.id}: load ${w.load}, but it serves ${loads.get(w) ?? 0}` });
    if (live !== this.liveCount) problems.push({ rule: 'Bookkeeping', message: `live count ${this.liveCount}, but ${live} requests are live` });
    return problems;
  }

  /** Free blocks per pool (tests). */
  freeBlocks(): number[] {
    return this.pools.map((p) => p.free);
  }
}

/** Runs a whole workload through a new engine: the common case. */
export function simulate(options: EngineOptions): RunResult {
  return new Engine(options).runToCompletion();
}
