// The contract between the engine and whatever executes a step: the engine says what the step computes,
// the executor says how long it takes (virtual seconds) and which token each finished sequence produces.
//
// The cost model answers synchronously, and the engine then never awaits (the simulator's fast path). An
// executor that runs real kernels (engine/executors/model-executor.ts: CPU reference, WebGPU) answers with
// a Promise; the engine's async driver (Engine.runToCompletionAsync / stepOnceAsync) awaits it before the
// simulation moves on, so virtual time does not advance while the kernels run.

export type Role = 'prefill' | 'decode' | 'unified';

/** One request's share of a step. */
export interface StepItem {
  /** Request id (as in the trace). */
  readonly req: string;
  /** The request's seed: pseudo-tokens and synthetic prompt ids derive from it. */
  readonly seed: number;
  /** Prompt length: positions below it hold prompt ids, the others generated tokens (a model executor's input). */
  readonly prompt: number;
  /** `prefill`: a prompt chunk or a recompute; `decode`: one position fed with the last generated token. */
  readonly phase: 'prefill' | 'decode';
  /** First position computed by this step. */
  readonly startPos: number;
  /** Positions computed: startPos .. startPos + tokens − 1. */
  readonly tokens: number;
  /** Whether this step computes the sequence's last position, so that a next token comes out of it. */
  readonly producesToken: boolean;
  /**
   * Speculative decoding: how many of the item's last positions hold draft tokens (a verify: the last
   * token's position, then `draft` drafts); 0 otherwise. A verify's result is the argmax after every one of
   * its positions (StepResult.nextAll).
   */
  readonly draft: number;
  /**
   * The token id at each position (`tokens` of them), where the engine gives them: a decode or verify item
   * of a speculative run (its last token, then its drafts). Absent: positions below `prompt` hold the
   * prompt's ids, the others the generated tokens.
   */
  readonly ids?: readonly number[];
  /** The request's physical blocks in the worker's pool, in logical order (valid until the step ends). */
  readonly blockTable: readonly number[];
  /** Output tokens generated before this step, when the executor asked for them (wantsTokenHistory), else null. */
  readonly generated: readonly number[] | null;
  /**
   * The prompt's first `prefixLength` positions are those of the shared sequence seeded by `prefixSeed` (the
   * workload's `prefix`): every request with that prefix has the same ids there. 0 when it has none.
   */
  readonly prefixSeed: number;
  readonly prefixLength: number;
}

/** What one step computes, with the totals a cost model prices. */
export interface StepSpec {
  readonly worker: string;
  readonly role: Role;
  readonly gpu: number;
  /** The worker's share of the GPU's SMs, percent. */
  readonly share: number;
  /** Share the step effectively gets, percent: less than `share` when co-running workers oversubscribe the GPU. */
  readonly effectiveShare: number;
  /** Whether a worker of the other phase has a step in flight on the same GPU (memory-bandwidth contention). */
  readonly coRunning: boolean;
  readonly items: readonly StepItem[];
  /** Positions computed by prefill items. */
  readonly prefillTokens: number;
  /** Causal attention (query, key) pairs of the prefill items. */
  readonly attentionPairs: number;
  /** Decode positions: one per decode item, and a verify's drafts. */
  readonly decodeItems: number;
  /** Cached tokens the decode items attend to, in all (a verify's context counted once, up to its last draft). */
  readonly contextTokens: number;
  /** Copy-on-write copies ([from, to] blocks of the worker's pool) to carry out before the step computes. */
  readonly copies?: readonly (readonly [number, number])[];
  /**
   * Core-attention disaggregation: the step's core attention runs on attention servers (this is their work),
   * and the worker computes only the rest of the layers. Absent: attention runs on the worker.
   */
  readonly attention?: StepAttention;
}

/** The attention servers' work in one step (docs/cad.md). */
export interface StepAttention {
  /** Per live server: the tasks it computes in this step. */
  readonly servers: readonly AttentionServerWork[];
  /** (query, key) pairs a lost server had computing when it was lost (done again elsewhere). */
  readonly wastedPairs: number;
  /** Buffers per server: with two or more (ping-pong) a task's transfer overlaps another task's compute. */
  readonly buffers: number;
  /** Whether the decode items' attention stays on the worker (they have no tasks). */
  readonly decodeLocal: boolean;
}

/** One attention server's tasks in a step, in the quantities the cost model prices. */
export interface AttentionServerWork {
  tasks: number;
  /** Causal (query, key) pairs of its tasks. */
  pairs: number;
  /** Query positions of its tasks (Q in, O out). */
  queries: number;
  /** Key positions whose K and V it receives: per request, the furthest key its tasks of that request read. */
  keys: number;
}

export interface StepResult {
  /** Virtual seconds from step_begin to step_end; finite and > 0. */
  duration: number;
  /** Per item (same order): the next token id if the item produces one, else −1. */
  tokens: ArrayLike<number>;
  /**
   * Speculative decoding, required when an item has drafts: per item (same order), for an item with
   * `draft` > 0 the greedy argmax after each of its 1 + draft positions; null for the others.
   */
  nextAll?: readonly (ArrayLike<number> | null)[];
}

export interface StepExecutor {
  readonly name: string;
  /** Whether StepItem.generated must carry each request's output so far (real executors feed it back). */
  readonly wantsTokenHistory?: boolean;
  /**
   * The prompt ids the executor computes a request with (a model executor's synthetic prompt), for a drafter
   * that looks for n-grams in the request's own tokens; absent when the executor has no such ids.
   */
  promptIds?(r: { readonly seed: number; readonly prompt: number; readonly prefixSeed: number; readonly prefixLength: number }): number[];
  /** Prices (cost model) or runs (model executors, through an adapter) one step. */
  execute(step: StepSpec): StepResult | Promise<StepResult>;
  /** The duration of a KV transfer of `tokens` cached tokens between GPUs (disaggregated mode), seconds. */
  transferTime(tokens: number): number;
  /** Seconds a new worker needs before it can serve, by how the mode starts it (semi-PD: process start and mapping; Nexus: context switch). */
  workerInitTime(mechanism: ResizeMechanism): number;
}

/** How a resize brings up the new workers: semi-PD starts worker processes; Nexus switches green contexts. */
export type ResizeMechanism = 'worker-start' | 'context-switch';

/** The executor returned something the engine cannot use: one line naming the step. */
export class ExecutorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecutorError';
  }
}
