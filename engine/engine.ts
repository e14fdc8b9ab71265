// The serving engine: a deterministic discrete-event simulation, in virtual time, of prefill and decode
// workers over unified KV block pools, with continuous batching, chunked prefill, preemption by retraction,
// aborts, the partition controller's resize handoff, and the disaggregated and unified baselines.
// docs/engine.md describes it. This file is the facade: it wires the rooms (rooms.ts), dispatches each
// simulation event to the module that owns it, runs the scheduling pass, and answers the public API. Every
// action emits the trace event of spec/trace-format.ts that names it; the engine never imports the spec's
// machines: the spec judges its traces from the outside.
import { makeHeader, type TraceEvent, type TraceHeader } from '../spec/trace-format.ts';
import { resolveConfig, type Allocator, type EngineConfig, type EngineOptions, type Mode } from './config.ts';
import { buildSeams } from './faults/seams.ts';
import { FULL_GROUP, KvManager, WINDOW_GROUP } from './kv/kv-manager.ts';
import { PrefixCache } from './kv/prefix-cache.ts';
import { summarize, type RequestRecord, type RunMetrics } from './metrics.ts';
import { createMode } from './modes/index.ts';
import { bookkeepingProblems, observe, records, type BookkeepingProblem, type EngineView } from './observe.ts';
import { Resize } from './partition/resize.ts';
import type { Decision, Observation, Slo } from './policy-api.ts';
import { PolicyDriver } from './policy-driver.ts';
import type { Rooms } from './rooms.ts';
import type { AttentionCounts } from './sched/attention.ts';
import { Forks } from './sched/forks.ts';
import { Lifecycle } from './sched/lifecycle.ts';
import { Preemption } from './sched/preemption.ts';
import { schedulingPass } from './sched/scheduler.ts';
import { Speculation, type SpeculativeCounts } from './sched/speculation.ts';
import { WaitingQueue } from './sched/waiting-queue.ts';
import { WorkerSet } from './sched/workers.ts';
import { Clock, SimKind } from './sim/clock.ts';
import { History } from './sim/history.ts';
import { Tracer } from './sim/tracer.ts';
import { Worker, type Req, type Step, type Transfer } from './state.ts';
import { StepRunner } from './steps.ts';
import type { TraceSink } from './trace-sink.ts';

export { DEFAULT_SLO, EngineConfigError, InvalidDecisionError } from './config.ts';
export type { Allocator, EngineOptions, Mode, PolicyHandle, PrefillOrder, ShareRule, SpeculativeOptions } from './config.ts';
export { DRAFTERS } from './config.ts';
export type { SpeculativeCounts } from './sched/speculation.ts';
export type { AttentionCounts } from './sched/attention.ts';
export type { EngineView, RequestView, WorkerView } from './observe.ts';
export { MODE_INFO, MODES } from './modes/info.ts';
export type { RequestState, WorkerState } from './state.ts';

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
  /** Prefix caching (shared KV): what the cache and the forks did. */
  sharing: SharingCounts;
  /** Speculative decoding: its verifies, drafts and accepted drafts; null when off. */
  speculative: SpeculativeCounts | null;
  /** Core-attention disaggregation: its tasks, dispatches, read-backs, server losses and balance; null when off. */
  attention: AttentionCounts | null;
}

/** What shared KV did in a run: blocks hit (and their tokens), blocks cached, evicted, forks and copy-on-write copies. */
export interface SharingCounts {
  hits: number;
  hitTokens: number;
  inserts: number;
  evictions: number;
  forks: number;
  copies: number;
}

export interface ProgressInfo {
  time: number;
  arrived: number;
  ended: number;
  total: number;
  events: number;
}

type RunOptions = { onProgress?: (p: ProgressInfo) => void; progressEvery?: number };

/** Builds every room of the engine for `config`; the fault patches are applied to the seams last. */
function wire(config: EngineConfig, sink: TraceSink | null): Rooms {
  const rooms = { config, clock: new Clock(), tracer: new Tracer(sink), history: new History(config.sampleInterval, config.observationWindow) } as { -readonly [K in keyof Rooms]: Rooms[K] };
  rooms.workers = new WorkerSet();
  rooms.waiting = new WaitingQueue();
  rooms.prefix = new PrefixCache(config.prefixCaching, config.prefixCache, config.blockSize, config.blocks);
  rooms.kv = new KvManager(config, rooms.clock, rooms.tracer, rooms.prefix, rooms);
  rooms.lifecycle = new Lifecycle(rooms);
  rooms.preemption = new Preemption(rooms);
  rooms.forks = new Forks(rooms);
  rooms.steps = new StepRunner(rooms);
  rooms.resize = new Resize(rooms);
  rooms.mode = createMode(config.mode, rooms);
  rooms.speculation = config.speculative ? new Speculation(config.speculative, rooms) : null;
  rooms.seams = buildSeams(rooms, config.faults.map((f) => f.patch(rooms)));
  return rooms;
}

export class Engine {
  readonly mode: Mode;
  readonly header: TraceHeader;
  readonly blockSize: number;
  readonly shareRule: 'oversubscribe' | 'exact';
  readonly allocatorMode: Allocator;
  readonly slo: Slo;

  private readonly rooms: Rooms;
  private readonly driver: PolicyDriver;

  constructor(options: EngineOptions) {
    const config = resolveConfig(options);
    const rooms = wire(config, options.trace ?? null);
    this.rooms = rooms;
    this.mode = config.mode.name;
    this.blockSize = config.blockSize;
    this.shareRule = config.mode.shareRule;
    this.allocatorMode = config.allocator;
    this.slo = config.slo;
    this.driver = new PolicyDriver(rooms, options.policy ?? null);
    const schedulers = rooms.mode.schedulers();
    const decls = rooms.mode.topology(config.split);
    // Under the decode-owned allocator (semi-PD's code) only the decode worker allocates.
    for (const d of decls) {
      const w = new Worker(d.id, d.role, 0, d.share, d.gpu, 'idle', config.allocator !== 'decode-owned' || d.role !== 'prefill');
      w.scheduler = schedulers[d.role]!;
      rooms.workers.add(w);
    }
    this.header = makeHeader({
      mode: config.mode.name,
      blocks: config.blocks,
      blockSize: config.blockSize,
      sms: config.profile.gpu.sms,
      split: config.split,
      shareRule: config.mode.shareRule,
      allocator: config.allocator,
      gpus: config.mode.gpus,
      workers: decls,
      // Version 3 (speculative decoding, layer groups, state slots, preemption while prefilling) includes version 2's shared KV.
      ...(config.traceVersion > 1 ? { version: config.traceVersion } : {}),
      ...(config.prefixCaching ? { prefixCache: config.prefixCache } : {}),
      ...(config.slidingWindow > 0 ? { groups: [{ id: FULL_GROUP }, { id: WINDOW_GROUP, window: config.slidingWindow }] } : {}),
      ...(config.stateSlots > 0 ? { stateSlots: config.stateSlots } : {}),
      ...(rooms.steps.attention !== null ? { attentionServers: rooms.steps.attention.headerServers() } : {}),
      source: options.source ?? `pdspec engine (${config.executor.name} executor, profile ${config.profile.name})`,
    });
    rooms.tracer.sink?.header(this.header);
    rooms.history.split(0, config.split);
    if (config.workload.length > 0) rooms.clock.push(config.workload[0].arrival, SimKind.Arrival, null);
    this.driver.start();
  }

  /** Virtual time now. */
  get now(): number {
    return this.rooms.clock.now;
  }

  /** Simulation events processed. */
  get events(): number {
    return this.rooms.clock.events;
  }

  /** Whether simulation events remain. */
  get done(): boolean {
    return this.rooms.clock.empty;
  }

  // -------------------------------------------------------------------------------------------
  // Driving the simulation

  /**
   * Advances by one simulation event (and the scheduling it enables); returns the trace events it emitted,
   * in order. Returns [] once done. Synchronous executors only (see stepOnceAsync).
   */
  stepOnce(): TraceEvent[] {
    const captured: TraceEvent[] = [];
    this.rooms.tracer.collect(captured);
    try {
      this.advance();
      this.rooms.steps.requireNone();
    } finally {
      this.rooms.tracer.stopCollecting();
    }
    return captured;
  }

  async stepOnceAsync(): Promise<TraceEvent[]> {
    const captured: TraceEvent[] = [];
    this.rooms.tracer.collect(captured);
    try {
      this.advance();
      await this.rooms.steps.drain();
    } finally {
      this.rooms.tracer.stopCollecting();
    }
    return captured;
  }

  /** Runs every event; the executor must be synchronous (the cost model is). */
  runToCompletion(options: RunOptions = {}): RunResult {
    const every = options.progressEvery ?? 65536;
    let countdown = every;
    while (this.advance()) {
      this.rooms.steps.requireNone();
      if (options.onProgress && --countdown === 0) {
        countdown = every;
        options.onProgress(this.progress());
      }
    }
    return this.finishRun();
  }

  /** Runs every event, awaiting an asynchronous executor's steps (virtual time waits for them). */
  async runToCompletionAsync(options: RunOptions = {}): Promise<RunResult> {
    const every = options.progressEvery ?? 65536;
    let countdown = every;
    while (this.advance()) {
      await this.rooms.steps.drain();
      if (options.onProgress && --countdown === 0) {
        countdown = every;
        options.onProgress(this.progress());
      }
    }
    return this.finishRun();
  }

  progress(): ProgressInfo {
    const { lifecycle, config, clock } = this.rooms;
    return { time: clock.now, arrived: lifecycle.nextArrival, ended: lifecycle.endedCount, total: config.workload.length, events: clock.events };
  }

  private finishRun(): RunResult {
    const { tracer, clock, resize, lifecycle, prefix } = this.rooms;
    tracer.sink?.close();
    return {
      metrics: this.metrics(),
      header: this.header,
      records: this.records(),
      events: clock.events,
      endTime: clock.now,
      resizes: resize.count,
      stalled: lifecycle.reqs.filter((r) => !r.ended).map((r) => r.id),
      ignoredSplitDecisions: this.driver.ignoredSplitDecisions,
      policy: this.driver.policy?.name ?? null,
      prefixHits: prefix.hits,
      sharing: { hits: prefix.hits, hitTokens: prefix.hitTokens, inserts: prefix.inserts, evictions: prefix.evictions, forks: prefix.forks, copies: prefix.copies },
      speculative: this.rooms.speculation ? { ...this.rooms.speculation.counts } : null,
      attention: this.rooms.steps.attention ? { ...this.rooms.steps.attention.counts } : null,
    };
  }

  /** Processes the next simulation event, then the scheduling pass; false when there is none. */
  private advance(): boolean {
    const { clock, history, kv, lifecycle, mode, resize } = this.rooms;
    const ev = clock.pop();
    if (!ev) return false;
    history.sampleUpTo(ev.time, kv);
    clock.now = ev.time;
    switch (ev.kind) {
      case SimKind.Arrival:
        lifecycle.arrive();
        break;
      case SimKind.Abort:
        lifecycle.clientAbort(ev.ref as Req);
        break;
      case SimKind.StepEnd: {
        const step = ev.ref as Step;
        step.worker.scheduler.onStepEnd(step);
        break;
      }
      case SimKind.TransferEnd:
        mode.onTransferEnd(ev.ref as Transfer);
        break;
      case SimKind.WorkerReady:
        resize.onWorkerReady(ev.ref as Worker);
        break;
      case SimKind.PolicyTick:
        this.driver.onTick();
        break;
      case SimKind.AdmitTimeout:
        mode.onAdmitTimeout(ev.ref as Req);
        break;
    }
    schedulingPass(this.rooms);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Inputs from outside: decisions and client aborts

  /** Applies a decision: a changed split starts a resize; prefillOrder reorders the waiting queue. */
  applyDecision(decision: Decision): void {
    this.driver.apply(decision);
  }

  /**
   * A client aborts a request now (property campaigns inject aborts between any two engine events); false
   * when the request has not arrived or has ended.
   */
  abortNow(id: string): boolean {
    const r = this.rooms.lifecycle.reqs.find((q) => q.id === id);
    if (!r || r.ended) return false;
    this.rooms.clock.push(this.rooms.clock.now, SimKind.Abort, r);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Observability

  /** The policy's view of the system now (engine/policy-api.ts). */
  observation(): Observation {
    return this.driver.observation();
  }

  /** The observable state in the spec's vocabulary. O(blocks + requests + workers). */
  observe(): EngineView {
    return observe(this.rooms);
  }

  /** Each arrived request's output tokens (when recordOutputs is on). */
  outputs(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const r of this.rooms.lifecycle.reqs) if (r.outputs) out.set(r.id, r.outputs.slice());
    return out;
  }

  records(): RequestRecord[] {
    return records(this.rooms.lifecycle.reqs);
  }

  metrics(): RunMetrics {
    const { history, config } = this.rooms;
    return summarize(this.records(), config.slo, { splitTimeline: history.splitTimeline.slice(), kvOccupancy: history.occupancy.slice() });
  }

  /**
   * The engine's own bookkeeping, cross-checked (O(blocks + requests)): every block free or owned by the
   * request whose table holds it, free + owned = pool size, worker loads equal the requests they serve,
   * the live count. Returns the problems found, none when consistent. For tests and debugging.
   */
  checkBookkeeping(): string[] {
    return this.bookkeepingProblems().map((p) => p.message);
  }

  /** The problems of checkBookkeeping, each named by the safety rule it breaks (observe.ts). */
  bookkeepingProblems(): BookkeepingProblem[] {
    return bookkeepingProblems(this.rooms);
  }

  /** Free blocks per pool (tests). */
  freeBlocks(): number[] {
    return this.rooms.kv.pools.map((p) => p.free);
  }
}

/** Runs a whole workload through a new engine: the common case. */
export function simulate(options: EngineOptions): RunResult {
  return new Engine(options).runToCompletion();
}
