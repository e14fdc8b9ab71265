// The engine's options, their defaults and their validation: EngineOptions in, a resolved EngineConfig
// out (or an EngineConfigError of one line). Mode-specific rules come from the mode table (modes/info.ts),
// fault-specific settings from the fault patches (faults/index.ts).
import { CostModelExecutor } from './executors/cost-model.ts';
import type { StepExecutor } from './executors/step-executor.ts';
import { enabledFaults, type EngineFaults, type FaultPatch } from './faults/index.ts';
import { MODE_INFO, MODES, isMode, type Allocator, type Mode, type ModeInfo, type ShareRule } from './modes/info.ts';
import type { Decision, LatencyModel, Policy, Slo, Split } from './policy-api.ts';
import { latencyModel, type Profile } from './profile.ts';
import type { TraceSink } from './trace-sink.ts';
import { normalise, type WorkloadRequest } from './workloads/types.ts';

export type { Allocator, Mode, ShareRule };
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
   * Prefix caching, with shared KV (the trace is version 2): a request's computed full blocks of its shared
   * `prefix` enter the cache under their keys; a later request whose first keys are cached takes references
   * on those blocks and skips computing them; a cached block whose last holder frees it stays mapped until an
   * allocation evicts it (least recently freed first). Parallel samples (`n` > 1) share their parent's blocks
   * and copy a shared block before writing it. Default false.
   */
  prefixCaching?: boolean;
  /**
   * With prefix caching, which cache the trace declares: `hash` (vLLM v1's block hash map, the default) or
   * `radix` (SGLang's radix tree: eviction may take only blocks no request holds).
   */
  prefixCache?: 'hash' | 'radix';
  /**
   * With prefix caching, whether the trace reports the cache's counters (cache_size) after each operation on
   * the cache, as SGLang's evictable and protected sizes. Default true; false for an engine that keeps none.
   */
  cacheSizeEvents?: boolean;
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
  /**
   * Speculative decoding (the trace is version 3): a decoding request's step verifies up to `k` draft tokens
   * after its last token; the longest prefix of drafts that greedy decoding would have chosen is accepted,
   * then the model's own token after it (the correction, or the bonus when every draft is accepted), and the
   * rest is rolled back. Outputs are those of plain greedy decoding; only the number of steps changes.
   * Default: off. Not with asynchronous scheduling.
   */
  speculative?: SpeculativeOptions | null;
  /**
   * A hybrid-attention model with global and sliding-window layers (Gemma 3, gpt-oss, Mistral's SWA), as
   * vLLM v1's hybrid KV cache manager keeps it (the trace is version 3): two layer groups, `full` and `swa`,
   * each with its own block table in the same pool, and this window (in positions, the query's own
   * included) for `swa`. Once a request's computed positions leave some of its first `swa` blocks out of the
   * window of any later step, those blocks are freed while it lives (SlidingWindowManager.remove_skipped_blocks).
   * Cost-model executor only (the shipped model has no windowed layers); not with prefix caching.
   */
  slidingWindow?: number | null;
  /**
   * A hybrid attention/state-space model (Jamba, Nemotron-H; SGLang's MambaPool) keeps one recurrent state
   * per request in a slot beside its KV blocks: this many slots per GPU (the trace is version 3). A request
   * takes a slot when it is admitted and gives it back with its blocks. Cost-model executor only; not with
   * prefix caching or disaggregation (the state would travel with the KV transfer).
   */
  stateSlots?: number | null;
  /**
   * Unified mode: a worker short of blocks for its decode items may also retract a request it is still
   * prefilling (vLLM v1 preempts any running request, mid-chunked-prefill too); the trace is version 3.
   * Default false: only decoding requests are preempted.
   */
  preemptPrefilling?: boolean;
  /**
   * Core-attention disaggregation (CAD, DistCA; docs/cad.md; the trace is version 4): each step's core
   * attention runs as tasks on `servers` stateless attention servers instead of on the worker. Each batch
   * item's query positions are sharded (`shards` per item, default 2), the shards balanced over the servers
   * (greedy, then split until the busiest server is within `epsilon` of the mean, default 0.1), and dispatched
   * into the servers' `buffers` (default 2: ping-pong). `lossAtStep`: the run's n-th step loses server
   * `lossServer` (default 1, A1) mid-step; its unfinished tasks are dispatched again to the live servers.
   * Unified mode, cost-model executor only. Default: off.
   */
  attentionServers?: AttentionServerOptions | null;
}

/** Core-attention disaggregation's options (EngineOptions.attentionServers). */
export interface AttentionServerOptions {
  /** Attention servers (A0 .. A<n−1>), 1..1024. */
  servers: number;
  /** Buffers per server, 1..1024; default 2 (ping-pong). */
  buffers?: number;
  /** Query shards per batch item (at most its positions), 1..1024; default 2. */
  shards?: number;
  /** Balance target: the busiest server's load at most (1 + epsilon) · the mean, else shards are split; ≥ 0, default 0.1. */
  epsilon?: number;
  /** The run's step (1-based) during which server `lossServer` is lost; default never. */
  lossAtStep?: number | null;
  /** The server lost at `lossAtStep` (its index); default 1 (A1). */
  lossServer?: number;
  /**
   * Whose attention goes to the servers: `prefill` (default: prompt chunks only, the quadratic part whose
   * stragglers the servers absorb; a decode item's attention stays on the worker, next to its KV cache), or
   * `all` (every batch item, decode positions too, each task reading its request's whole context: over a
   * PCIe-class link the decode traffic saturates it).
   */
  offload?: 'all' | 'prefill';
}

/** Core-attention disaggregation, resolved. */
export interface AttentionServerConfig {
  readonly servers: number;
  readonly buffers: number;
  readonly shards: number;
  readonly epsilon: number;
  /** 0: no loss. */
  readonly lossAtStep: number;
  readonly lossServer: number;
  /** Whether decode items' attention goes to the servers too (offload `all`). */
  readonly offloadDecode: boolean;
}

/**
 * The draft source of speculative decoding.
 * - `ngram`: vLLM's n-gram proposer (prompt lookup) on the request's own tokens, prompt ids and output so
 *   far: the longest suffix n-gram (`min` ≤ n ≤ `max`, default 1 and 3) that occurs earlier, at its earliest
 *   occurrence, proposes the tokens that followed it (at most `k`, default 3). No match: a plain decode.
 * - `oracle` (the cost model's simulator): knows the tokens the cost model will produce; each draft is the
 *   true token with probability `acceptance` (seeded, deterministic), else another id. With the model
 *   executors use `ngram`.
 */
export type SpeculativeOptions = ({ drafter: 'ngram'; k?: number; min?: number; max?: number } | { drafter: 'oracle'; k?: number; acceptance: number }) & {
  /**
   * After each verify, free the request's blocks past its accepted positions at once (SGLang's EAGLE worker
   * gives the rejected drafts' slots back); default false: they stay with the request and are rewritten
   * (vLLM). With blocks of several positions only whole blocks past the accepted ones go.
   */
  freeRejected?: boolean;
};

/** The drafters of speculative decoding. */
export const DRAFTERS = ['ngram', 'oracle'] as const;

/** Speculative decoding, resolved: every default filled in. */
export interface SpeculativeConfig {
  readonly drafter: (typeof DRAFTERS)[number];
  /** Most drafts a verify checks. */
  readonly k: number;
  /** n-gram drafter: the shortest and longest n-gram matched. */
  readonly min: number;
  readonly max: number;
  /** Oracle drafter: the probability that a draft is the true token. */
  readonly acceptance: number;
  /** Blocks past the accepted positions are freed after each verify. */
  readonly freeRejected: boolean;
}

/** The most drafts one verify may check. */
export const MAX_DRAFTS = 64;

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

export const DEFAULT_SLO: Slo = { ttft: 2, tpot: 0.1 };

/** The most KV blocks a pool may have (2²⁴: the pools keep two 32-bit words per block). */
export const MAX_BLOCKS = 1 << 24;

/** The options resolved: every default filled in, every value checked. */
export interface EngineConfig {
  readonly mode: ModeInfo;
  readonly workload: readonly WorkloadRequest[];
  readonly profile: Profile;
  readonly model: LatencyModel;
  readonly executor: StepExecutor;
  /** Whether the executor feeds generated tokens back (a model), so that each request's output is passed to it. */
  readonly wantsHistory: boolean;
  readonly blocks: number;
  readonly blockSize: number;
  readonly allocator: Allocator;
  /** Allocations written as alloc_query, alloc_take, alloc_commit. */
  readonly stepAllocEvents: boolean;
  /** Whether allocation takes the pool lock (off only under a fault that removes it). */
  readonly poolLocking: boolean;
  /** Whether the pools check owners on every take and release (off under faults that break ownership on purpose). */
  readonly blockOwnerChecks: boolean;
  readonly prefillChunk: number;
  readonly unifiedChunk: number;
  readonly maxBatch: number;
  readonly watermarkBlocks: number;
  readonly keepOutputs: boolean;
  readonly slo: Slo;
  readonly seed: number;
  readonly observationWindow: number;
  readonly sampleInterval: number;
  readonly asyncScheduling: boolean;
  readonly prefixCaching: boolean;
  readonly prefixCache: 'hash' | 'radix';
  readonly cacheSizeEvents: boolean;
  readonly decodeAdmitTimeout: number;
  /** Speculative decoding, or null when off. */
  readonly speculative: SpeculativeConfig | null;
  /** The windowed layer group's window in positions (0: one layer group, no window). */
  readonly slidingWindow: number;
  /** State slots per GPU (0: none). */
  readonly stateSlots: number;
  readonly preemptPrefilling: boolean;
  /** Core-attention disaggregation's servers, or null when off. */
  readonly attentionServers: AttentionServerConfig | null;
  /**
   * The trace version the engine writes: 1, 2 with prefix caching (shared KV), 3 with speculative decoding,
   * layer groups, state slots or preemption while prefilling (v3 includes v2), 4 with attention servers
   * (v4 includes v3).
   */
  readonly traceVersion: 1 | 2 | 3 | 4;
  /** The epoch-0 split. */
  readonly split: Split;
  readonly faults: readonly FaultPatch[];
}

/** Checks a split against the share rule; `error` builds the exception (a config or a decision error). */
export function checkSplit(split: Split, mode: ModeInfo, error: (m: string) => Error): void {
  const ok = (s: unknown) => typeof s === 'number' && Number.isInteger(s) && s >= 1 && s <= 100;
  if (split === null || typeof split !== 'object' || !ok(split.prefill) || !ok(split.decode)) {
    throw error(`split must have integer shares in 1..100, got ${JSON.stringify(split)}`);
  }
  if (mode.shareRule === 'exact' && split.prefill + split.decode !== 100) {
    throw error(`split ${split.prefill}/${split.decode} breaks the exact share rule of ${mode.name} (prefill + decode = 100)`);
  }
}

function integerOption(value: number, min: number, what: string): number {
  if (!Number.isInteger(value) || value < min) throw new EngineConfigError(`${what} must be an integer ≥ ${min}, got ${value}`);
  return value;
}

function resolveWorkload(workload: readonly WorkloadRequest[]): WorkloadRequest[] {
  try {
    return normalise(workload);
  } catch (err) {
    throw new EngineConfigError((err as Error).message);
  }
}

/** Forks of a request with n parallel samples are named <id>#1 .. <id>#(n−1): no other request may have those ids. */
function checkForkIds(workload: readonly WorkloadRequest[]): void {
  const ids = new Set(workload.map((r) => r.id));
  for (const r of workload) {
    for (let k = 1; k < (r.n ?? 1); k++) if (ids.has(`${r.id}#${k}`)) throw new EngineConfigError(`request '${r.id}' has n = ${r.n}, and its fork id '${r.id}#${k}' is taken by another request`);
  }
}

/** Speculative decoding's options checked and completed (null when off). */
function resolveSpeculative(o: EngineOptions, wantsHistory: boolean): SpeculativeConfig | null {
  const s = o.speculative;
  if (s === undefined || s === null) return null;
  if (typeof s !== 'object' || Array.isArray(s)) throw new EngineConfigError(`speculative must be an object {drafter, k?, ...}, got ${JSON.stringify(s)}`);
  const drafter = (s as { drafter?: unknown }).drafter;
  if (drafter !== 'ngram' && drafter !== 'oracle') throw new EngineConfigError(`speculative drafter must be ${DRAFTERS.join(' or ')}, got ${JSON.stringify(drafter)}`);
  const known = drafter === 'ngram' ? ['drafter', 'k', 'min', 'max', 'freeRejected'] : ['drafter', 'k', 'acceptance', 'freeRejected'];
  const freeRejected = (s as { freeRejected?: unknown }).freeRejected ?? false;
  if (typeof freeRejected !== 'boolean') throw new EngineConfigError(`speculative freeRejected must be true or false, got ${JSON.stringify(freeRejected)}`);
  for (const key of Object.keys(s)) {
    if (!known.includes(key)) throw new EngineConfigError(`speculative option '${key}' does not apply to the ${drafter} drafter (its options: ${known.slice(1).join(', ')})`);
  }
  const int = (value: unknown, fallback: number, min: number, max: number, what: string): number => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new EngineConfigError(`speculative ${what} must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
    return v;
  };
  const k = int(s.k, 3, 1, MAX_DRAFTS, 'k (drafts per verify)');
  if (o.asyncScheduling === true) {
    throw new EngineConfigError('speculative decoding needs each verify’s accepted count before the request’s next step is scheduled: it does not run with asynchronous scheduling');
  }
  if (drafter === 'ngram') {
    const min = int((s as { min?: number }).min, 1, 1, 1024, 'min (shortest n-gram)');
    const max = int((s as { max?: number }).max, Math.max(3, min), min, 1024, `max (longest n-gram, ≥ min ${min})`);
    return { drafter, k, min, max, acceptance: Number.NaN, freeRejected };
  }
  const acceptance = (s as { acceptance?: unknown }).acceptance;
  if (typeof acceptance !== 'number' || !(acceptance >= 0 && acceptance <= 1)) throw new EngineConfigError(`speculative acceptance must be a probability in [0, 1], got ${JSON.stringify(acceptance)}`);
  if (wantsHistory) throw new EngineConfigError('the oracle drafter knows the cost model’s tokens, not a model’s: with a model executor use the ngram drafter');
  return { drafter, k, min: 0, max: 0, acceptance, freeRejected };
}

/** The v3 model and scheduling options checked: sliding window, state slots, preemption while prefilling. */
function resolveV3(o: EngineOptions, mode: ModeInfo, wantsHistory: boolean, prefixCaching: boolean, stepAllocEvents: boolean): { slidingWindow: number; stateSlots: number; preemptPrefilling: boolean } {
  const positive = (v: unknown, what: string): number => {
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_BLOCKS) throw new EngineConfigError(`${what} must be an integer in 1..${MAX_BLOCKS}, got ${JSON.stringify(v)}`);
    return v;
  };
  const slidingWindow = positive(o.slidingWindow, 'sliding window (positions)');
  const stateSlots = positive(o.stateSlots, 'state slots (per GPU)');
  for (const [on, what, layers] of [
    [slidingWindow > 0, 'a sliding window', 'sliding-window layers'],
    [stateSlots > 0, 'state slots', 'state-space layers'],
  ] as const) {
    if (!on) continue;
    if (wantsHistory) throw new EngineConfigError(`the ${layers} of a hybrid model (${what}) are not in the model executors' llama2.c model: run it on the cost model`);
    if (prefixCaching) throw new EngineConfigError(`prefix caching with ${what} is not modelled (a cached prefix would need its windowed blocks or its recurrent state too)`);
  }
  if (slidingWindow > 0 && stepAllocEvents) throw new EngineConfigError('a sliding window writes each layer group’s allocation as its own alloc event: not with allocation steps (alloc_query, alloc_take, alloc_commit)');
  if (stateSlots > 0 && mode.gpus > 1) throw new EngineConfigError(`state slots in the ${mode.name} mode are not modelled (the recurrent state would travel with the KV transfer)`);
  const preemptPrefilling = o.preemptPrefilling === true;
  if (preemptPrefilling && mode.name !== 'unified') throw new EngineConfigError(`preemption while prefilling applies to the unified mode only (a ${mode.name} prefill worker allocates every block of a prompt before it starts)`);
  if (stateSlots > 0 && o.workload.some((r) => (r.n ?? 1) > 1)) throw new EngineConfigError('parallel samples (n > 1) with state slots are not modelled (each fork would need a copy of the recurrent state)');
  return { slidingWindow, stateSlots, preemptPrefilling };
}

/** Core-attention disaggregation's options checked and completed (null when off). */
function resolveAttentionServers(o: EngineOptions, mode: ModeInfo, executor: StepExecutor, slidingWindow: number): AttentionServerConfig | null {
  const a = o.attentionServers;
  if (a === undefined || a === null) return null;
  if (typeof a !== 'object' || Array.isArray(a)) throw new EngineConfigError(`attention servers must be an object {servers, buffers?, shards?, epsilon?, lossAtStep?, lossServer?, offload?}, got ${JSON.stringify(a)}`);
  const known = ['servers', 'buffers', 'shards', 'epsilon', 'lossAtStep', 'lossServer', 'offload'];
  for (const key of Object.keys(a)) if (!known.includes(key)) throw new EngineConfigError(`attention servers: unknown option '${key}' (known: ${known.join(', ')})`);
  const int = (value: unknown, fallback: number, min: number, max: number, what: string): number => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new EngineConfigError(`attention servers: ${what} must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
    return v;
  };
  const servers = int(a.servers, Number.NaN, 1, 1024, 'servers');
  const buffers = int(a.buffers, 2, 1, 1024, 'buffers (per server)');
  const shards = int(a.shards, 2, 1, 1024, 'shards (per batch item)');
  const epsilon = a.epsilon ?? 0.1;
  if (typeof epsilon !== 'number' || !(epsilon >= 0) || !Number.isFinite(epsilon)) throw new EngineConfigError(`attention servers: epsilon (balance target) must be a finite number ≥ 0, got ${JSON.stringify(a.epsilon)}`);
  const lossAtStep = a.lossAtStep === null ? 0 : int(a.lossAtStep, 0, 0, Number.MAX_SAFE_INTEGER, 'lossAtStep (a step number, 0: never)');
  if ((lossAtStep > 0 || a.lossServer !== undefined) && servers < 2) throw new EngineConfigError('attention servers: a server loss needs at least 2 servers (its tasks go to the others)');
  const lossServer = servers < 2 ? 0 : int(a.lossServer, 1, 0, servers - 1, `lossServer (a server index below ${servers})`);
  const offload = a.offload ?? 'prefill';
  if (offload !== 'all' && offload !== 'prefill') throw new EngineConfigError(`attention servers: offload must be all or prefill, got ${JSON.stringify(a.offload)}`);
  if (mode.name !== 'unified') throw new EngineConfigError(`attention servers (core-attention disaggregation) run in the unified mode only for now, got ${mode.name}`);
  if (!(executor instanceof CostModelExecutor)) throw new EngineConfigError(`attention servers are priced by the cost-model executor only, got executor '${executor.name}'`);
  if (slidingWindow > 0) throw new EngineConfigError('attention servers with a sliding window are not modelled (a task reads one block table; layer groups have two)');
  return { servers, buffers, shards, epsilon, lossAtStep, lossServer, offloadDecode: offload === 'all' };
}

export function resolveConfig(o: EngineOptions): EngineConfig {
  if (!isMode(o.mode)) throw new EngineConfigError(`unknown mode '${o.mode}' (${MODES.join(', ')})`);
  const mode = MODE_INFO[o.mode];
  integerOption(o.blocks, 1, 'blocks');
  if (o.blocks > MAX_BLOCKS) throw new EngineConfigError(`blocks must be at most ${MAX_BLOCKS.toLocaleString('en')} per pool, got ${o.blocks}`);
  integerOption(o.blockSize, 1, 'block size');
  const model = latencyModel(o.profile);
  const executor: StepExecutor = o.executor ?? new CostModelExecutor(o.profile);
  const wantsHistory = executor.wantsTokenHistory === true;
  const faults = enabledFaults({ ...(o.faults ?? {}) });
  const allocator = o.allocator ?? mode.defaultAllocator;
  if (allocator !== 'lock' && allocator !== 'decode-owned') throw new EngineConfigError(`allocator must be lock or decode-owned, got '${allocator}'`);
  const refusal = mode.refusedAllocators[allocator];
  if (refusal) throw new EngineConfigError(refusal);
  if (o.prefixCache !== undefined && o.prefixCache !== 'hash' && o.prefixCache !== 'radix') throw new EngineConfigError(`prefix cache must be hash or radix, got '${String(o.prefixCache)}'`);
  const prefillChunk = o.prefillChunk ?? 8192;
  const unifiedChunk = o.unifiedChunk ?? 1024;
  const maxBatch = o.maxBatch ?? 256;
  integerOption(prefillChunk, 1, 'prefill chunk');
  if (!Number.isInteger(unifiedChunk) || unifiedChunk < 0) throw new EngineConfigError(`unified chunk must be an integer ≥ 0 (0: no chunking), got ${unifiedChunk}`);
  integerOption(maxBatch, 1, 'max batch');
  const watermark = o.watermark ?? 0.01;
  if (!(watermark >= 0 && watermark < 1)) throw new EngineConfigError(`watermark must be a fraction in [0, 1), got ${watermark}`);
  const observationWindow = o.observationWindow ?? o.policy?.interval ?? 1;
  if (!(observationWindow > 0)) throw new EngineConfigError(`observation window must be > 0 seconds, got ${observationWindow}`);
  const sampleInterval = o.sampleInterval ?? 1;
  if (!(sampleInterval > 0)) throw new EngineConfigError(`sample interval must be > 0, got ${sampleInterval}`);
  if (!mode.resizable && o.split && (o.split.prefill !== 100 || o.split.decode !== 100)) {
    throw new EngineConfigError(`the ${mode.name} mode has no split to choose (each phase has its whole GPU): got ${o.split.prefill}/${o.split.decode}`);
  }
  const split = mode.resizable ? (o.split ?? mode.defaultSplit) : mode.defaultSplit;
  checkSplit(split, mode, (m) => new EngineConfigError(m));
  const workload = resolveWorkload(o.workload);
  const decodeAdmitTimeout = o.decodeAdmitTimeout ?? Number.POSITIVE_INFINITY;
  if (!(decodeAdmitTimeout >= 0)) throw new EngineConfigError(`decode admission timeout must be ≥ 0 seconds, got ${o.decodeAdmitTimeout}`);
  if (o.decodeAdmitTimeout !== undefined && !mode.decodeAdmission) throw new EngineConfigError(`a decode admission timeout applies to the disaggregated mode only`);
  checkForkIds(workload);
  const speculative = resolveSpeculative(o, wantsHistory);
  const prefixCaching = o.prefixCaching === true;
  const stepAllocEvents = o.allocEvents === 'steps' || faults.some((f) => f.settings?.allocEvents === 'steps');
  const v3 = resolveV3(o, mode, wantsHistory, prefixCaching, stepAllocEvents);
  const attentionServers = resolveAttentionServers(o, mode, executor, v3.slidingWindow);
  if (attentionServers === null) {
    const cad = faults.find((f) => f.options.attentionServers !== undefined);
    if (cad) throw new EngineConfigError(`fault '${cad.name}' needs attention servers (the attentionServers option)`);
  }
  return {
    mode,
    workload,
    profile: o.profile,
    model,
    executor,
    wantsHistory,
    blocks: o.blocks,
    blockSize: o.blockSize,
    allocator,
    stepAllocEvents,
    poolLocking: !faults.some((f) => f.settings?.poolLocking === false),
    blockOwnerChecks: !faults.some((f) => f.relaxes.includes('blockOwners')),
    prefillChunk,
    unifiedChunk,
    maxBatch,
    watermarkBlocks: Math.floor(watermark * o.blocks),
    // An executor that feeds generated tokens back (a model) needs them kept, recordOutputs or not; so do
    // speculative decoding's drafts and the token ids its trace names.
    keepOutputs: o.recordOutputs === true || wantsHistory || speculative !== null,
    slo: o.slo ?? DEFAULT_SLO,
    seed: o.seed ?? 0,
    observationWindow,
    sampleInterval,
    asyncScheduling: o.asyncScheduling === true,
    prefixCaching,
    prefixCache: o.prefixCache ?? 'hash',
    cacheSizeEvents: o.cacheSizeEvents !== false,
    decodeAdmitTimeout,
    speculative,
    ...v3,
    attentionServers,
    traceVersion: attentionServers !== null ? 4 : speculative !== null || v3.slidingWindow > 0 || v3.stateSlots > 0 || v3.preemptPrefilling ? 3 : prefixCaching ? 2 : 1,
    split: { prefill: split.prefill, decode: split.decode },
    faults,
  };
}
