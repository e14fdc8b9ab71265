// Trace format (v1, v2, v3): one definition from which the TypeScript types, the line validator, the JSON Schema and
// the event table of docs/trace-format.md are all derived, so that they cannot drift apart.

export const TRACE_FORMAT = 'pdspec-trace';
/** The version writers use unless they need more: v1, one owner per block. */
export const TRACE_VERSION = 1;
/**
 * Versions this pdspec reads. v2 adds shared KV: reference-counted blocks and a prefix cache (the events
 * marked `since: 2`); a v1 header keeps the v1 semantics, and a v2 event in a v1 trace is bad input. v3 adds
 * what a step computes (each batch item's first position, draft positions and token ids), speculative
 * verification (`step_end.accepted`) and preemption in any phase, and the clock events `tick` and `idle` with an
 * optional release deadline (`releaseWithin`); v3 includes v2. v4 adds core-attention disaggregation
 * (attention servers, their buffers, and core-attention tasks); v4 includes v3.
 */
export const TRACE_VERSIONS = [1, 2, 3, 4] as const;
export type TraceVersion = (typeof TRACE_VERSIONS)[number];

// ---------------------------------------------------------------------------------------------
// Field kinds

type Kind =
  | 'id' // request, worker, step or transfer id: a non-empty string, or an integer (read as its decimal string)
  | 'count' // integer ≥ 0
  | 'integer' // any safe integer (an engine's counter, which a bug may drive below 0: a violation, not bad input)
  | 'positive' // integer ≥ 1
  | 'time' // seconds, finite, ≥ 0
  | 'share' // percent of the GPU's SMs, integer 1..100
  | 'blocks' // non-empty array of block ids (integers ≥ 0)
  | 'block' // one block id (integer ≥ 0)
  | 'key' // a cache key: a non-empty string (an engine's block hash, a radix node's path)
  | 'keys' // an array of cache keys
  | 'batch' // non-empty array of {req, tokens, from?, draft?, ids?} (from, draft, ids: v3)
  | 'counts' // an object mapping request ids to counts
  | 'text' // free text
  | { readonly enum: readonly string[] };

interface FieldSpec {
  readonly kind: Kind;
  readonly optional?: true;
  /** The first trace version with this field (default 1). */
  readonly since?: TraceVersion;
  readonly doc: string;
}

interface EventSpec {
  /** The first trace version with this event (default 1). */
  readonly since?: TraceVersion;
  readonly doc: string;
  /** When an engine like vLLM, SGLang or semi-PD writes this event. */
  readonly emit: string;
  readonly fields: Readonly<Record<string, FieldSpec>>;
}

const f = {
  req: { kind: 'id', doc: 'request id' },
  worker: { kind: 'id', doc: 'worker id' },
  blocks: { kind: 'blocks', doc: 'block ids' },
  group: { kind: 'id', optional: true, since: 3, doc: 'the layer group whose blocks these are (the header’s `groups`; default the first)' },
} as const satisfies Record<string, FieldSpec>;

export const ROLES = ['prefill', 'decode', 'unified'] as const;
export const MODES = ['semi-pd', 'nexus', 'disaggregated', 'unified'] as const;
export const ALLOCATORS = ['lock', 'decode-owned'] as const;
export const SHARE_RULES = ['oversubscribe', 'exact'] as const;
export const PREFIX_CACHES = ['hash', 'radix'] as const;

/** The event catalogue of trace format v1, in the order of a request's life. */
export const EVENTS = {
  arrive: {
    doc: 'A request enters the waiting queue.',
    emit: 'vLLM: Scheduler.add_request; SGLang: the scheduler receives the tokenized request; semi-PD: the decode process enqueues it.',
    fields: {
      req: f.req,
      prompt: { kind: 'positive', doc: 'prompt length in tokens' },
      maxTokens: { kind: 'positive', optional: true, doc: 'output limit in tokens, if known' },
      keys: {
        kind: 'keys',
        optional: true,
        since: 2,
        doc: "cache keys of the prompt's full blocks, in order (vLLM: Request.block_hashes; SGLang: the page keys); a request without keys neither hits nor inserts",
      },
    },
  },
  schedule: {
    doc: 'A waiting request is given to a prefill (or unified) worker, which serves it from now on.',
    emit: 'vLLM: the request moves from waiting to running; SGLang: get_new_batch_prefill picks it; semi-PD: the batch is queued for the prefill worker.',
    fields: { req: f.req, worker: f.worker },
  },
  alloc: {
    doc: 'Atomic allocation: under the pool lock, the worker queries utilisation, takes these free blocks for the request and updates utilisation.',
    emit: 'vLLM: KVCacheManager.allocate_slots; SGLang: token_to_kv_pool_allocator.alloc; semi-PD: the decode process allocates for a prompt chunk or a decode step.',
    fields: { worker: f.worker, req: f.req, blocks: f.blocks, group: f.group },
  },
  alloc_query: {
    doc: 'First of the three allocation steps: take the pool lock (lock mode) and read utilisation.',
    emit: 'An engine that logs its allocator at this granularity (semi-PD unified memory manager); otherwise write `alloc`.',
    fields: { worker: f.worker },
  },
  alloc_take: {
    doc: 'Second allocation step: take blocks that were free in the utilisation read by the last alloc_query of this worker.',
    emit: 'As alloc_query.',
    fields: { worker: f.worker, req: f.req, blocks: f.blocks },
  },
  alloc_commit: {
    doc: 'Third allocation step: write back utilisation with the taken blocks and release the pool lock.',
    emit: 'As alloc_query.',
    fields: { worker: f.worker },
  },
  cache_hit: {
    since: 2,
    doc: "Prefix-cache hit: before its first step, the request takes a reference on cached blocks whose keys are its first keys; they cover its positions 0..tokens − 1, which count as computed. Whole blocks, and never the whole sequence (the last position is always computed).",
    emit: 'vLLM v1: KVCacheManager.allocate_slots after the capacity check, when BlockPool.touch takes the hit blocks (get_computed_blocks only looks); SGLang: after match_prefix, when the matched path is locked (inc_lock_ref) for the admitted request.',
    fields: {
      req: f.req,
      blocks: f.blocks,
      tokens: { kind: 'positive', doc: 'positions covered: blocks × blockSize' },
    },
  },
  cache_insert: {
    since: 2,
    doc: "A full block of the request is entered in the prefix cache under its key: from now on other requests may hit it, and it keeps the key when its last holder frees it.",
    emit: 'vLLM v1: BlockPool.cache_full_blocks, per block given a hash (when it is scheduled to become full); SGLang: RadixCache insert for the request\'s new pages (cache_unfinished_req / cache_finished_req).',
    fields: {
      req: f.req,
      block: { kind: 'block', doc: 'the block, one of the request\'s' },
      key: { kind: 'key', doc: 'its cache key: the key of its position in the request (checked against `keys` where the request has one there)' },
    },
  },
  evict: {
    since: 2,
    doc: 'A cached block loses its key: a free one becomes plainly free (and may be allocated), a held one stays with its holders, uncached.',
    emit: 'vLLM v1: BlockPool._maybe_evict_cached_block (from get_new_blocks before the block is reissued, or evict_blocks); SGLang: RadixCache.evict deleting a leaf.',
    fields: {
      block: { kind: 'block', doc: 'the block' },
      key: { kind: 'key', optional: true, doc: 'its key, as a cross-check' },
    },
  },
  fork: {
    since: 2,
    doc: 'A decoding request is forked (parallel sampling, beam search): the child is a new request in the same state, served by the same worker, holding every block of the parent (each gains a holder). A block both write must be copied first (`cow`).',
    emit: 'vLLM v0: BlockSpaceManager.fork (BlockTable.fork, the allocator\'s fork incrementing reference counts), called by Scheduler.fork_seq. vLLM v1 and SGLang do not fork: n > 1 is n requests sharing through the prefix cache.',
    fields: {
      parent: { kind: 'id', doc: 'the request forked' },
      child: { kind: 'id', doc: 'the new request id' },
    },
  },
  cow: {
    since: 2,
    doc: 'Copy-on-write: before writing a block it shares, the request takes a free block, the contents are copied into it, and its reference to the shared block moves to the copy.',
    emit: 'vLLM v0: cow_block_if_not_appendable (CopyOnWriteTracker.record_cow), the pairs drained by append_slots into blocks_to_copy for the worker\'s copy kernel.',
    fields: {
      worker: f.worker,
      req: f.req,
      shared: { kind: 'block', doc: 'the shared block the request stops holding' },
      copy: { kind: 'block', doc: 'the free block it holds instead, at the same position' },
    },
  },
  cache_size: {
    since: 2,
    doc: "The engine's own accounting of its prefix cache, in tokens: cached blocks no request holds (evictable) and cached blocks some request holds (protected). Checked against the blocks' states: the counters the scheduler admits work against must be the cache's real size.",
    emit: 'SGLang: RadixCache.evictable_size() and protected_size() after a lock, unlock, insert or eviction; vLLM v1: the free queue\'s cached blocks and the cached blocks in use (block_size × count).',
    fields: {
      evictable: { kind: 'integer', doc: 'tokens in cached blocks that no request holds (a negative count is a violation of CacheSizeAccounted)' },
      protected: { kind: 'integer', doc: 'tokens in cached blocks that some request holds (likewise)' },
    },
  },
  step_begin: {
    doc: "A worker launches one iteration over a batch: for each request, `tokens` more positions are computed and their K/V written into the request's blocks.",
    emit: 'vLLM: the model runner launches execute_model with a SchedulerOutput; SGLang: run_batch; semi-PD: a prefill or decode worker iteration starts.',
    fields: {
      worker: f.worker,
      step: { kind: 'id', doc: 'step id, unique among the worker’s steps in flight' },
      batch: {
        kind: 'batch',
        doc: 'requests and the number of positions computed for each; v3: `from`, the first position computed (required), `draft`, how many of the last positions hold unverified draft tokens, and `ids`, the token id written at each position',
      },
    },
  },
  step_end: {
    doc: 'The iteration completes: its K/V writes have landed and its blocks are no longer in use by it. v3: for each item that verified drafts, how many were accepted; the rest are rolled back.',
    emit: 'vLLM: update_from_output for that step (num_accepted = len(generated_token_ids) − 1); SGLang: process_batch_result (EagleVerifyInput.verify: accept_length); semi-PD: the worker iteration returns.',
    fields: {
      worker: f.worker,
      step: { kind: 'id', doc: 'step id of a step_begin of this worker' },
      accepted: { kind: 'counts', optional: true, since: 3, doc: 'per request whose item had `draft` > 0: the draft tokens accepted (a prefix of them, 0..draft); exactly a + 1 tokens follow (the accepted drafts, then the correction or bonus token)' },
    },
  },
  token: {
    doc: 'A generated token is appended to the request’s output. `index` counts from 0 and continues across preemption and migration.',
    emit: 'vLLM/SGLang: a new output token is appended to the sequence after a step; semi-PD: the decode worker appends the first token when it pops the FIFO, later ones after each decode step.',
    fields: {
      req: f.req,
      index: { kind: 'count', doc: 'position of the token in the output' },
      token: { kind: 'count', optional: true, doc: 'token id' },
    },
  },
  handoff: {
    doc: 'A prefilled request leaves its prefill worker and is queued on a decode worker’s FIFO; with it go the request and the write right on its blocks (no KV byte moves when both share a pool).',
    emit: 'semi-PD: the prefill worker puts the finished batch on the FIFO; disaggregated engines: the request is queued at the decode instance (SGLang PD: added to the transfer queue).',
    fields: { req: f.req, from: f.worker, to: f.worker },
  },
  join: {
    doc: 'A decode worker pops the request from the head of its FIFO (or a unified worker turns it to decoding) and it joins the running batch.',
    emit: 'semi-PD: the decode process pops the FIFO head; SGLang PD: the request moves from the prealloc/transfer queue to the running batch; vLLM: nothing separate (write it right after the first token).',
    fields: { req: f.req, worker: f.worker },
  },
  transfer_begin: {
    doc: 'A KV transfer starts from the prefill worker’s pool into the blocks the decode side pre-allocated for the request; both sides’ blocks are in use until transfer_end.',
    emit: 'vLLM: the KV connector starts send/recv (NIXL, Mooncake); SGLang PD: the KV sender/receiver begins; DistServe: the migration starts.',
    fields: {
      xfer: { kind: 'id', doc: 'transfer id, unique among transfers in flight' },
      req: f.req,
      from: f.worker,
      to: f.worker,
    },
  },
  transfer_end: {
    doc: 'The transfer’s completion (or cancellation) signal: its blocks are no longer in use by it.',
    emit: 'vLLM: the connector reports finished_sending/finished_recving; SGLang PD: the poller sees Success or Failed.',
    fields: {
      xfer: { kind: 'id', doc: 'transfer id of a transfer_begin' },
      outcome: { kind: { enum: ['done', 'cancelled'] }, optional: true, doc: '`done` (default): the KV arrived; `cancelled`: it did not' },
    },
  },
  preempt: {
    doc: 'A decoding request (v3: or a prefilling one) is retracted: its blocks (and state slots) will be freed and it returns to the waiting queue to be recomputed from prompt + generated tokens.',
    emit: 'vLLM: Scheduler._preempt_request; SGLang: retract_decode; semi-PD: the decode worker retracts a victim.',
    fields: { req: f.req, worker: f.worker },
  },
  free: {
    doc: 'Blocks of a request go back to the free list (v2: the request drops its reference; a block goes to the free list with its last holder, and keeps its cache key there until evicted).',
    emit: 'vLLM: KVCacheManager.free; SGLang: token_to_kv_pool_allocator.free / release_kv_cache; semi-PD: the decode process frees.',
    fields: { req: f.req, blocks: f.blocks, group: f.group },
  },
  slot_alloc: {
    since: 3,
    doc: 'A request is given a state slot (a hybrid model’s recurrent state) in its worker’s GPU; it owns it alone until it ends or is retracted.',
    emit: 'SGLang: HybridReqToTokenPool.alloc giving the request its mamba_pool_idx; vLLM v1: the mamba KV cache group’s block allocated for the request (MambaManager).',
    fields: { worker: f.worker, req: f.req, slot: { kind: 'count', doc: 'slot id: pool p holds p·S .. p·S + S − 1 (S = the header’s stateSlots)' } },
  },
  slot_free: {
    since: 3,
    doc: 'A request that has ended or been retracted gives its state slot back (a recurrent state cannot be truncated: a retracted request restarts it from the beginning).',
    emit: 'SGLang: free_mamba_cache / release_kv_cache; vLLM v1: KVCacheManager.free of the mamba group.',
    fields: { req: f.req, slot: { kind: 'count', doc: 'the slot id' } },
  },
  finish: {
    doc: 'The request completed (stop token or length limit). Its blocks must then be freed, once.',
    emit: 'vLLM: the request is finished in update_from_output; SGLang: the request is finished in process_batch_result.',
    fields: { req: f.req },
  },
  abort: {
    doc: 'The request is cancelled, from any live state. Blocks still in use by a step or transfer are freed once it ends.',
    emit: 'vLLM: Scheduler.finish_requests with FINISHED_ABORTED; SGLang: abort_request.',
    fields: { req: f.req },
  },
  resize_begin: {
    doc: 'A new split is requested: the next epoch’s workers will have these shares.',
    emit: 'semi-PD: the SLO-aware resizer decides a new (x, y); Nexus: the partition controller picks another context.',
    fields: {
      epoch: { kind: 'count', doc: 'the new epoch (current + 1)' },
      prefill: { kind: 'share', doc: 'prefill share of SMs in percent' },
      decode: { kind: 'share', doc: 'decode share of SMs in percent' },
    },
  },
  worker_start: {
    doc: 'A worker of the new epoch starts and maps the shared weights and KV pool (not yet ready to serve).',
    emit: 'semi-PD: a new MPS worker process is launched; Nexus: a pre-built green context is selected.',
    fields: {
      worker: f.worker,
      role: { kind: { enum: ROLES }, doc: 'prefill, decode or unified' },
      epoch: { kind: 'count', doc: 'epoch of the worker' },
      share: { kind: 'share', doc: 'its share of SMs in percent' },
      gpu: { kind: 'count', optional: true, doc: 'GPU (pool) index, default 0' },
    },
  },
  worker_ready: {
    doc: 'A starting worker is initialised and may serve.',
    emit: 'semi-PD: the new worker reports it has mapped weights and KV pool.',
    fields: { worker: f.worker },
  },
  migrate: {
    doc: 'During a resize, an old worker hands one of its requests (with the write right on its blocks, and its place in the FIFO) to its successor.',
    emit: 'semi-PD: the old worker hands its queue to the new one after its last iteration.',
    fields: { req: f.req, from: f.worker, to: f.worker },
  },
  worker_stop: {
    doc: 'An old worker stops after its own current iteration, its queue handed over.',
    emit: 'semi-PD: the old worker process exits (asynchronous switch: each old worker independently).',
    fields: { worker: f.worker },
  },
  resize_end: {
    doc: 'Every old worker has stopped: the new split is stable.',
    emit: 'semi-PD/Nexus: the resize is complete.',
    fields: { epoch: { kind: 'count', doc: 'the epoch now stable' } },
  },
  task_create: {
    since: 4,
    doc: 'Core-attention disaggregation: during its step, a worker makes the core attention softmax(QKᵀ)V of a request’s query positions [from, to) a task, reading the K/V of positions 0 .. to − 1 in `blocks`; those blocks are read-held until the task’s result is consumed.',
    emit: 'DistCA: the scheduler’s plan shards a document on the query axis into attention tasks (one per shard and layer); an engine writes it when the pre-core-attention part of the step has produced Q, K and V.',
    fields: {
      task: { kind: 'id', doc: 'task id, unique in the trace' },
      req: f.req,
      worker: f.worker,
      step: { kind: 'id', doc: 'the step in flight on `worker` whose attention this is' },
      from: { kind: 'count', doc: 'first query position of the shard' },
      to: { kind: 'positive', doc: 'one past its last query position (it attends to positions 0 .. to − 1)' },
      blocks: { kind: 'blocks', doc: 'the request’s blocks holding the K/V of positions 0 .. to − 1' },
    },
  },
  task_dispatch: {
    since: 4,
    doc: 'The task’s Q, K and V are sent into one buffer of an attention server (a lost server’s unfinished task is dispatched again). `reads`: other buffers of the same server whose inputs the task reads too (a shard batched with another shard of its document, whose K/V is already there).',
    emit: 'DistCA: the all-to-all dispatch of QKV to the attention servers of the plan (n_to_n_dispatch), one nano-batch of the ping-pong pair at a time.',
    fields: {
      task: { kind: 'id', doc: 'the task' },
      server: { kind: 'id', doc: 'an attention server of the header' },
      buffer: { kind: 'count', doc: 'the buffer’s index on that server (0 .. buffers − 1)' },
      reads: { kind: 'blocks', optional: true, doc: 'indices of other buffers of the server whose inputs it reads' },
    },
  },
  task_start: {
    since: 4,
    doc: 'The attention server starts computing the task (fused with whatever else it batched).',
    emit: 'DistCA: the attention server launches the core-attention kernel over its rebatched shards.',
    fields: { task: { kind: 'id', doc: 'the task' } },
  },
  task_end: {
    since: 4,
    doc: 'The task’s result is in its buffer: in place, the output overwrites the task’s own inputs there.',
    emit: 'DistCA: the core-attention kernel over the shard completes (output written over the Q buffer).',
    fields: { task: { kind: 'id', doc: 'the task' } },
  },
  task_consume: {
    since: 4,
    doc: 'The worker that made the task has read its result back; the buffer is free again and the task’s read-hold on its blocks ends.',
    emit: 'DistCA: the all-to-all that returns the core-attention output to the original layout, before the post-core-attention part (O projection, MLP).',
    fields: { task: { kind: 'id', doc: 'the task' } },
  },
  server_lost: {
    since: 4,
    doc: 'An attention server is gone (a failure, or a resize that takes its GPU back): its buffers are lost with whatever they held, and each task dispatched to it and not yet consumed must be dispatched again.',
    emit: 'DistCA: an attention server’s rank leaves the group (failure or re-planning); the scheduler’s next plan re-dispatches its tasks.',
    fields: { server: { kind: 'id', doc: 'the attention server' } },
  },
  tick: {
    since: 3,
    doc: 'Time passes, nothing else happens: a heartbeat, so that a release deadline that has passed is seen without waiting for the next event of the run.',
    emit: 'Any periodic point of the engine with nothing else to write, e.g. every second: vLLM: the engine core’s busy loop when a scheduler step has no work, or its periodic stats logging; SGLang: the event loop’s idle branch (no batch to run). Needed only with a release deadline on a quiet stream.',
    fields: {},
  },
  idle: {
    since: 3,
    doc: 'The engine says it is at rest: no request is waiting or running, no step or transfer is in flight, and nothing is held for a later free. The at-rest rules are judged here, as at the end of a trace with `--quiescent`: every request has ended, and every block and state slot is free.',
    emit: 'vLLM: a scheduler step with no work (`has_unfinished_requests()` false) and, with a KV connector, no finished request whose blocks wait for `finished_sending`; SGLang: the event loop’s idle branch, where `self_check_during_idle` runs its own `check_memory` (in PD prefill mode only when `disagg_prefill_inflight_queue` is empty).',
    fields: {},
  },
} as const satisfies Record<string, EventSpec>;

export type EventName = keyof typeof EVENTS;
export const EVENT_NAMES = Object.keys(EVENTS) as EventName[];

/** The events a trace of `version` may contain. */
export function eventsOfVersion(version: TraceVersion): EventName[] {
  return EVENT_NAMES.filter((name) => ((EVENTS[name] as EventSpec).since ?? 1) <= version);
}

// ---------------------------------------------------------------------------------------------
// Types derived from the catalogue

export interface BatchItem {
  req: string;
  tokens: number;
  /** v3: the first position the step computes for the request (it computes from .. from + tokens − 1). */
  from?: number;
  /** v3: how many of the last positions hold unverified draft tokens (a speculative verify). */
  draft?: number;
  /** v3: the token id written at each position, `tokens` of them. */
  ids?: number[];
}

type ValueOf<K> = K extends 'id' | 'text' | 'key'
  ? string
  : K extends 'keys'
    ? string[]
  : K extends 'block'
    ? number
  : K extends 'count' | 'integer' | 'positive' | 'time' | 'share'
    ? number
    : K extends 'blocks'
      ? number[]
      : K extends 'batch'
        ? BatchItem[]
        : K extends 'counts'
          ? Record<string, number>
        : K extends { readonly enum: readonly (infer V)[] }
          ? V
          : never;

type Fields<F> = { [K in keyof F as F[K] extends { optional: true } ? never : K]: ValueOf<F[K] extends FieldSpec ? F[K]['kind'] : never> } & {
  [K in keyof F as F[K] extends { optional: true } ? K : never]?: ValueOf<F[K] extends FieldSpec ? F[K]['kind'] : never>;
};

type Flatten<T> = { [K in keyof T]: T[K] };

/** One trace event, typed from the catalogue: `{ev, t, ...fields}`. */
export type TraceEvent = {
  [N in EventName]: Flatten<{ ev: N; t: number; note?: string } & Fields<(typeof EVENTS)[N]['fields']>>;
}[EventName];

export type EventOf<N extends EventName> = Extract<TraceEvent, { ev: N }>;

// ---------------------------------------------------------------------------------------------
// Header

export interface WorkerDecl {
  id: string;
  role: (typeof ROLES)[number];
  share: number;
  gpu: number;
}

export interface TraceHeader {
  format: typeof TRACE_FORMAT;
  version: TraceVersion;
  mode: (typeof MODES)[number];
  /** Blocks per pool (per GPU). */
  blocks: number;
  /** Tokens per block. */
  blockSize: number;
  /** SMs of one GPU. */
  sms: number;
  split: { prefill: number; decode: number };
  shareRule: (typeof SHARE_RULES)[number];
  allocator: (typeof ALLOCATORS)[number];
  /** Number of GPUs, each with its own pool. */
  gpus: number;
  /** Workers of epoch 0. */
  workers: WorkerDecl[];
  /** v2: how the prefix cache holds blocks (default `hash`). */
  prefixCache?: (typeof PREFIX_CACHES)[number];
  /** v3: state slots per GPU (a hybrid model's recurrent states), or absent when the model has none. */
  stateSlots?: number;
  /** v3: layer groups, each with its own block tables (a sliding-window group frees blocks outside its window). */
  groups?: { id: string; window?: number }[];
  /** v3: the engine's own promise: seconds within which an ended request releases everything it held (ReleaseWithin). */
  releaseWithin?: number;
  /** v4: attention servers (core-attention disaggregation), each with its buffers. */
  attentionServers?: { id: string; buffers: number }[];
  note?: string;
  source?: string;
}

interface HeaderFieldSpec {
  kind: Kind | 'split' | 'workers' | 'groups' | 'servers' | 'version' | { readonly const: string | number };
  optional?: true;
  doc: string;
}

export const HEADER_FIELDS: Record<keyof TraceHeader, HeaderFieldSpec> = {
  format: { kind: { const: TRACE_FORMAT }, doc: 'always "pdspec-trace"' },
  version: { kind: 'version', doc: 'format version: 1; 2 for shared KV (reference-counted blocks, a prefix cache); 3 adds positions, speculative verification, preemption in any phase and release deadlines; 4 adds core-attention disaggregation (attention servers and tasks)' },
  mode: { kind: { enum: MODES }, doc: 'serving architecture' },
  blocks: { kind: 'positive', doc: 'KV blocks per pool (one pool per GPU)' },
  blockSize: { kind: 'positive', doc: 'tokens per block' },
  sms: { kind: 'positive', doc: 'SMs (compute units) of one GPU' },
  split: { kind: 'split', optional: true, doc: 'epoch-0 shares {prefill, decode} in percent; default by mode' },
  shareRule: {
    kind: { enum: SHARE_RULES },
    optional: true,
    doc: '`oversubscribe` (semi-PD MPS: each share ≤ 100, sum ≤ 200) or `exact` (Nexus green contexts: sum = 100); default by mode',
  },
  allocator: {
    kind: { enum: ALLOCATORS },
    optional: true,
    doc: '`lock` (both workers allocate under the pool lock) or `decode-owned` (semi-PD code: only decode workers allocate); default `lock`',
  },
  gpus: { kind: 'positive', optional: true, doc: 'GPUs, each with its own pool; default 2 for disaggregated, else 1' },
  workers: { kind: 'workers', optional: true, doc: 'epoch-0 workers [{id, role, share, gpu}]; default by mode' },
  prefixCache: {
    kind: { enum: PREFIX_CACHES },
    optional: true,
    doc: 'v2 only: `hash` (vLLM v1: an eviction may uncache a block still held, as `BlockPool.evict_blocks` does) or `radix` (SGLang: eviction frees a tree node\'s pages, so it may take only blocks no request holds); default `hash`',
  },
  groups: {
    kind: 'groups',
    optional: true,
    doc: 'v3 only: layer groups [{id, window?}], each with its own block tables in the shared pool (vLLM v1’s KV cache groups: full attention, sliding window); `window` W counts the query position (a position p reads p − W + 1 .. p), so a live request may free a windowed group’s blocks whose positions are all below its computed length − W + 1; absent: one group, no window',
  },
  stateSlots: {
    kind: 'positive',
    optional: true,
    doc: 'v3 only: state slots per GPU, for a hybrid model whose recurrent layers (Mamba) keep one state per request beside the KV blocks (slot ids as block ids: pool p holds p·S .. p·S + S − 1); absent: no state slots',
  },
  releaseWithin: {
    kind: 'time',
    optional: true,
    doc: 'v3 only: the engine’s own release deadline D in seconds: every request frees all it holds within D of its end, or of the completion of the last step or transfer in flight on its blocks at its end (ReleaseWithin); `conform --release-within` overrides it; absent: no deadline',
  },
  attentionServers: {
    kind: 'servers',
    optional: true,
    doc: 'v4 only: attention servers [{id, buffers}] for core-attention disaggregation (DistCA): stateless servers that compute core-attention tasks, each in one of `buffers` buffers (two for ping-pong); absent: none',
  },
  note: { kind: 'text', optional: true, doc: 'free text, ignored by the checker' },
  source: { kind: 'text', optional: true, doc: 'the engine or tool that wrote the trace' },
};

/** The most blocks a pool of a trace may have: the checker keeps a state for every block (2²⁴: about 200 MB). */
export const MAX_TRACE_BLOCKS = 1 << 24;
/** The most GPUs (pools) a trace may declare. */
export const MAX_TRACE_GPUS = 64;
/** The most blocks of all pools together. */
export const MAX_TRACE_TOTAL_BLOCKS = 1 << 25;

/**
 * What each mode implies when the header does not say: its epoch-0 split, share rule, GPUs (each with its
 * own pool) and epoch-0 workers. The one list of modes and their defaults: the engine's mode objects and
 * the tools derive theirs from it.
 */
export const MODE_DEFAULTS: Readonly<Record<TraceHeader['mode'], { split: readonly [number, number]; shareRule: TraceHeader['shareRule']; gpus: number }>> = {
  'semi-pd': { split: [80, 100], shareRule: 'oversubscribe', gpus: 1 },
  nexus: { split: [50, 50], shareRule: 'exact', gpus: 1 },
  disaggregated: { split: [100, 100], shareRule: 'oversubscribe', gpus: 2 },
  unified: { split: [100, 100], shareRule: 'oversubscribe', gpus: 1 },
};

/** The epoch-0 workers a mode implies when the header does not list them. */
export function defaultWorkers(mode: TraceHeader['mode'], split: { prefill: number; decode: number }): WorkerDecl[] {
  switch (mode) {
    case 'unified':
      return [{ id: 'U0', role: 'unified', share: 100, gpu: 0 }];
    case 'disaggregated':
      return [
        { id: 'P0', role: 'prefill', share: split.prefill, gpu: 0 },
        { id: 'D0', role: 'decode', share: split.decode, gpu: 1 },
      ];
    default:
      return [
        { id: 'P0', role: 'prefill', share: split.prefill, gpu: 0 },
        { id: 'D0', role: 'decode', share: split.decode, gpu: 0 },
      ];
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: every problem is a FormatError naming the field; the caller adds the line number.

export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

function describe(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function readId(value: unknown, name: string): string {
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new FormatError(`field '${name}' must be a non-empty string or an integer, got ${describe(value)}`);
}

function readInt(value: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  const range = min === -Number.MAX_SAFE_INTEGER ? 'a safe integer' : max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in ${min}..${max}`;
  throw new FormatError(`field '${name}' must be ${range}, got ${describe(value)}`);
}

function readBlocks(value: unknown, name: string): number[] {
  if (!Array.isArray(value) || value.length === 0) throw new FormatError(`field '${name}' must be a non-empty array of block ids, got ${describe(value)}`);
  for (let i = 0; i < value.length; i++) readInt(value[i], `${name}[${i}]`, 0);
  return value as number[];
}

function readKey(value: unknown, name: string): string {
  if (typeof value === 'string' && value.length > 0) return value;
  throw new FormatError(`field '${name}' must be a cache key (a non-empty string), got ${describe(value)}`);
}

const V3_ITEM_FIELDS = new Set(['from', 'draft', 'ids']);

function readBatch(value: unknown, name: string, version: TraceVersion): BatchItem[] {
  if (!Array.isArray(value) || value.length === 0) throw new FormatError(`field '${name}' must be a non-empty array of {req, tokens}, got ${describe(value)}`);
  for (let i = 0; i < value.length; i++) {
    const item = value[i];
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw new FormatError(`${name}[${i}] must be an object {req, tokens}, got ${describe(item)}`);
    for (const key in item) {
      if (key === 'req' || key === 'tokens') continue;
      if (!V3_ITEM_FIELDS.has(key)) throw new FormatError(`${name}[${i}] has unknown field '${key}'`);
      if (version < 3) throw new FormatError(`field '${name}[${i}].${key}' needs trace version 3; the header says version ${version}`);
    }
    const b = item as BatchItem;
    const req = readId(b.req, `${name}[${i}].req`);
    if (req !== b.req) b.req = req;
    readInt(b.tokens, `${name}[${i}].tokens`, 1);
    if (version < 3) continue;
    if (b.from === undefined) throw new FormatError(`${name}[${i}] is missing field 'from' (trace v3: the first position the step computes)`);
    readInt(b.from, `${name}[${i}].from`, 0);
    if (b.draft !== undefined) {
      readInt(b.draft, `${name}[${i}].draft`, 0);
      if (b.draft >= b.tokens) throw new FormatError(`${name}[${i}].draft must be less than tokens (${b.tokens}): a verify also computes the last accepted token's position, got ${b.draft}`);
    }
    if (b.ids !== undefined) {
      if (!Array.isArray(b.ids) || b.ids.length !== b.tokens) throw new FormatError(`${name}[${i}].ids must be an array of ${b.tokens} token id(s), one per position, got ${describe(b.ids)}`);
      for (let k = 0; k < b.ids.length; k++) readInt(b.ids[k], `${name}[${i}].ids[${k}]`, 0);
    }
  }
  return value as BatchItem[];
}

function readCounts(value: unknown, name: string): Record<string, number> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new FormatError(`field '${name}' must be an object mapping request ids to counts, got ${describe(value)}`);
  for (const key in value as Record<string, unknown>) {
    if (key.length === 0) throw new FormatError(`field '${name}' has an empty request id`);
    readInt((value as Record<string, unknown>)[key], `${name}.${key}`, 0);
  }
  return value as Record<string, number>;
}

function readField(kind: Kind, value: unknown, name: string, version: TraceVersion = 1): unknown {
  switch (kind) {
    case 'id':
      return readId(value, name);
    case 'count':
      return readInt(value, name, 0);
    case 'integer':
      return readInt(value, name, -Number.MAX_SAFE_INTEGER);
    case 'positive':
      return readInt(value, name, 1);
    case 'share':
      return readInt(value, name, 1, 100);
    case 'time':
      if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
      throw new FormatError(`field '${name}' must be a finite number ≥ 0 (seconds), got ${describe(value)}`);
    case 'blocks':
      return readBlocks(value, name);
    case 'block':
      return readInt(value, name, 0);
    case 'key':
      return readKey(value, name);
    case 'keys':
      if (!Array.isArray(value)) throw new FormatError(`field '${name}' must be an array of cache keys, got ${describe(value)}`);
      for (let i = 0; i < value.length; i++) readKey(value[i], `${name}[${i}]`);
      return value;
    case 'batch':
      return readBatch(value, name, version);
    case 'counts':
      return readCounts(value, name);
    case 'text':
      if (typeof value === 'string') return value;
      throw new FormatError(`field '${name}' must be a string, got ${describe(value)}`);
    default:
      if (typeof value === 'string' && kind.enum.includes(value)) return value;
      throw new FormatError(`field '${name}' must be one of ${kind.enum.map((v) => `'${v}'`).join(', ')}, got ${describe(value)}`);
  }
}

interface CompiledEvent {
  since: TraceVersion;
  /** Optional fields that need a later version than the event's, with that version. */
  laterFields: [string, TraceVersion][];
  requiredNames: string[];
  requiredKinds: Kind[];
  optionalNames: string[];
  optionalKinds: Kind[];
  known: Set<string>;
}

const COMPILED = new Map<string, CompiledEvent>(
  EVENT_NAMES.map((name) => {
    const fields = Object.entries(EVENTS[name].fields as Record<string, FieldSpec>);
    const required = fields.filter(([, s]) => !s.optional);
    const optional = fields.filter(([, s]) => s.optional);
    return [
      name,
      {
        since: (EVENTS[name] as EventSpec).since ?? 1,
        laterFields: fields.filter(([, s]) => (s.since ?? 1) > ((EVENTS[name] as EventSpec).since ?? 1)).map(([k, s]) => [k, s.since!]),
        requiredNames: required.map(([k]) => k),
        requiredKinds: required.map(([, s]) => s.kind),
        optionalNames: optional.map(([k]) => k),
        optionalKinds: optional.map(([, s]) => s.kind),
        known: new Set(['ev', 't', 'note', ...fields.map(([k]) => k)]),
      },
    ];
  }),
);

/**
 * Checks one parsed event line against the catalogue and returns it as a TraceEvent: ids come back as
 * strings. The object is checked and normalised in place (the checker reads millions of them).
 */
export function readEvent(raw: unknown, version: TraceVersion = 1): TraceEvent {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(`an event must be a JSON object, got ${describe(raw)}`);
  const obj = raw as Record<string, unknown>;
  const ev = obj.ev;
  if (typeof ev !== 'string') throw new FormatError(`missing field 'ev' (the event name)`);
  const spec = COMPILED.get(ev);
  if (!spec) throw new FormatError(`unknown event '${ev}' (known: ${EVENT_NAMES.join(', ')})`);
  if (spec.since > version) throw new FormatError(`event '${ev}' needs trace version ${spec.since}; the header says version ${version}`);
  for (let i = 0; i < spec.laterFields.length; i++) {
    const [name, since] = spec.laterFields[i];
    if (since > version && obj[name] !== undefined) throw new FormatError(`field '${name}' of '${ev}' needs trace version ${since}; the header says version ${version}`);
  }
  readField('time', obj.t, 't');
  let fields = 2;
  const names = spec.requiredNames;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const value = obj[name];
    if (value === undefined) throw new FormatError(`event '${ev}' is missing field '${name}'`);
    const read = readField(spec.requiredKinds[i], value, name, version);
    if (read !== value) obj[name] = read;
    fields++;
  }
  for (let i = 0; i < spec.optionalNames.length; i++) {
    const name = spec.optionalNames[i];
    const value = obj[name];
    if (value === undefined) continue;
    const read = readField(spec.optionalKinds[i], value, name, version);
    if (read !== value) obj[name] = read;
    fields++;
  }
  if (obj.note !== undefined) {
    readField('text', obj.note, 'note');
    fields++;
  }
  // Any other field is an error: nothing is silently dropped.
  let count = 0;
  for (const key in obj) {
    count++;
    if (count > fields || !spec.known.has(key)) {
      for (const k in obj) if (!spec.known.has(k)) throw new FormatError(`event '${ev}' has unknown field '${k}'`);
    }
  }
  return obj as TraceEvent;
}

/** Checks the header line and fills in the defaults its mode implies. */
export function readHeader(raw: unknown): TraceHeader {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(`the header must be a JSON object, got ${describe(raw)}`);
  const obj = raw as Record<string, unknown>;
  if (obj.format !== TRACE_FORMAT) {
    if ('ev' in obj) throw new FormatError(`the first line must be the header {"format":"${TRACE_FORMAT}","version":${TRACE_VERSION},...}, got an event`);
    throw new FormatError(`field 'format' must be "${TRACE_FORMAT}", got ${describe(obj.format)}`);
  }
  if (!(TRACE_VERSIONS as readonly unknown[]).includes(obj.version)) throw new FormatError(`unsupported trace version ${describe(obj.version)}: this pdspec reads versions ${TRACE_VERSIONS.slice(0, -1).join(', ')} and ${TRACE_VERSIONS[TRACE_VERSIONS.length - 1]}`);
  for (const key in obj) if (!(key in HEADER_FIELDS)) throw new FormatError(`header has unknown field '${key}'`);
  for (const [key, spec] of Object.entries(HEADER_FIELDS)) if (!spec.optional && !(key in obj)) throw new FormatError(`header is missing field '${key}'`);
  const mode = readField({ enum: MODES }, obj.mode, 'mode') as TraceHeader['mode'];
  const defaults = MODE_DEFAULTS[mode];
  let split = { prefill: defaults.split[0], decode: defaults.split[1] };
  if (obj.split !== undefined) {
    const s = obj.split as Record<string, unknown>;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new FormatError(`field 'split' must be an object {prefill, decode}`);
    for (const key in s) if (key !== 'prefill' && key !== 'decode') throw new FormatError(`field 'split' has unknown field '${key}'`);
    split = { prefill: readInt(s.prefill, 'split.prefill', 1, 100), decode: readInt(s.decode, 'split.decode', 1, 100) };
  }
  const header: TraceHeader = {
    format: TRACE_FORMAT,
    version: obj.version as TraceVersion,
    mode,
    blocks: readInt(obj.blocks, 'blocks', 1, MAX_TRACE_BLOCKS),
    blockSize: readInt(obj.blockSize, 'blockSize', 1),
    sms: readInt(obj.sms, 'sms', 1),
    split,
    shareRule: obj.shareRule === undefined ? defaults.shareRule : (readField({ enum: SHARE_RULES }, obj.shareRule, 'shareRule') as TraceHeader['shareRule']),
    allocator: obj.allocator === undefined ? 'lock' : (readField({ enum: ALLOCATORS }, obj.allocator, 'allocator') as TraceHeader['allocator']),
    gpus: obj.gpus === undefined ? defaults.gpus : readInt(obj.gpus, 'gpus', 1, MAX_TRACE_GPUS),
    workers: [],
  };
  if (header.blocks * header.gpus > MAX_TRACE_TOTAL_BLOCKS) {
    throw new FormatError(`blocks × gpus must be at most ${MAX_TRACE_TOTAL_BLOCKS.toLocaleString('en')} (the checker keeps every block), got ${header.blocks} × ${header.gpus}`);
  }
  if (obj.prefixCache !== undefined) {
    if (header.version === 1) throw new FormatError(`field 'prefixCache' needs trace version 2; the header says version 1`);
    header.prefixCache = readField({ enum: PREFIX_CACHES }, obj.prefixCache, 'prefixCache') as TraceHeader['prefixCache'];
  }
  if (obj.groups !== undefined) {
    if (header.version < 3) throw new FormatError(`field 'groups' needs trace version 3; the header says version ${header.version}`);
    if (!Array.isArray(obj.groups) || obj.groups.length === 0 || obj.groups.length > 64) throw new FormatError(`field 'groups' must be an array of 1 to 64 layer groups {id, window?}`);
    const ids = new Set<string>();
    header.groups = obj.groups.map((g: unknown, i: number) => {
      if (g === null || typeof g !== 'object' || Array.isArray(g)) throw new FormatError(`groups[${i}] must be an object {id, window?}`);
      const o = g as Record<string, unknown>;
      for (const key in o) if (key !== 'id' && key !== 'window') throw new FormatError(`groups[${i}] has unknown field '${key}'`);
      const id = readId(o.id, `groups[${i}].id`);
      if (ids.has(id)) throw new FormatError(`groups[${i}].id '${id}' appears twice`);
      ids.add(id);
      return o.window === undefined ? { id } : { id, window: readInt(o.window, `groups[${i}].window`, 1) };
    });
  }
  if (obj.stateSlots !== undefined) {
    if (header.version < 3) throw new FormatError(`field 'stateSlots' needs trace version 3; the header says version ${header.version}`);
    header.stateSlots = readInt(obj.stateSlots, 'stateSlots', 1, MAX_TRACE_BLOCKS);
    if (header.stateSlots * header.gpus > MAX_TRACE_TOTAL_BLOCKS) throw new FormatError(`stateSlots × gpus must be at most ${MAX_TRACE_TOTAL_BLOCKS.toLocaleString('en')}, got ${header.stateSlots} × ${header.gpus}`);
  }
  if (obj.releaseWithin !== undefined) {
    if (header.version < 3) throw new FormatError(`field 'releaseWithin' needs trace version 3; the header says version ${header.version}`);
    header.releaseWithin = readField('time', obj.releaseWithin, 'releaseWithin') as number;
  }
  if (obj.attentionServers !== undefined) {
    if (header.version < 4) throw new FormatError(`field 'attentionServers' needs trace version 4; the header says version ${header.version}`);
    if (!Array.isArray(obj.attentionServers) || obj.attentionServers.length === 0 || obj.attentionServers.length > 1024) throw new FormatError(`field 'attentionServers' must be an array of 1 to 1024 servers {id, buffers}`);
    const ids = new Set<string>();
    header.attentionServers = obj.attentionServers.map((a: unknown, i: number) => {
      if (a === null || typeof a !== 'object' || Array.isArray(a)) throw new FormatError(`attentionServers[${i}] must be an object {id, buffers}`);
      const o = a as Record<string, unknown>;
      for (const key in o) if (key !== 'id' && key !== 'buffers') throw new FormatError(`attentionServers[${i}] has unknown field '${key}'`);
      const id = readId(o.id, `attentionServers[${i}].id`);
      if (ids.has(id)) throw new FormatError(`attentionServers[${i}].id '${id}' appears twice`);
      ids.add(id);
      return { id, buffers: readInt(o.buffers, `attentionServers[${i}].buffers`, 1, 1024) };
    });
  }
  if (obj.note !== undefined) header.note = readField('text', obj.note, 'note') as string;
  if (obj.source !== undefined) header.source = readField('text', obj.source, 'source') as string;
  if (obj.workers === undefined) {
    header.workers = defaultWorkers(mode, split);
  } else {
    if (!Array.isArray(obj.workers) || obj.workers.length === 0) throw new FormatError(`field 'workers' must be a non-empty array of {id, role, share, gpu}`);
    header.workers = obj.workers.map((w: unknown, i: number) => {
      if (w === null || typeof w !== 'object' || Array.isArray(w)) throw new FormatError(`workers[${i}] must be an object {id, role, share, gpu}`);
      const o = w as Record<string, unknown>;
      for (const key in o) if (!['id', 'role', 'share', 'gpu'].includes(key)) throw new FormatError(`workers[${i}] has unknown field '${key}'`);
      return {
        id: readId(o.id, `workers[${i}].id`),
        role: readField({ enum: ROLES }, o.role, `workers[${i}].role`) as WorkerDecl['role'],
        share: readInt(o.share, `workers[${i}].share`, 1, 100),
        gpu: o.gpu === undefined ? 0 : readInt(o.gpu, `workers[${i}].gpu`, 0, header.gpus - 1),
      };
    });
    const ids = new Set(header.workers.map((w) => w.id));
    if (ids.size !== header.workers.length) throw new FormatError(`field 'workers' lists a worker id twice`);
  }
  if (header.shareRule === 'exact' && split.prefill + split.decode !== 100)
    throw new FormatError(`split ${split.prefill} + ${split.decode} ≠ 100, but shareRule 'exact' needs the shares to sum to 100`);
  for (const w of header.workers) if (w.gpu >= header.gpus) throw new FormatError(`worker ${w.id} is on gpu ${w.gpu}, but the header has ${header.gpus} gpu(s)`);
  return header;
}

/** A header with the defaults filled in, for writers of traces (version 1 unless `version` says otherwise). */
export function makeHeader(fields: Partial<TraceHeader> & Pick<TraceHeader, 'mode' | 'blocks' | 'blockSize' | 'sms'>): TraceHeader {
  const { workers, ...rest } = fields;
  const header = readHeader({ format: TRACE_FORMAT, version: TRACE_VERSION, ...rest, ...(workers ? { workers } : {}) });
  return header;
}

// ---------------------------------------------------------------------------------------------
// JSON Schema (draft 2020-12), generated from the same catalogue

function kindSchema(kind: HeaderFieldSpec['kind'], doc: string): Record<string, unknown> {
  if (typeof kind === 'object' && 'const' in kind) return { const: kind.const, description: doc };
  if (typeof kind === 'object') return { enum: [...kind.enum], description: doc };
  switch (kind) {
    case 'id':
      return { oneOf: [{ type: 'string', minLength: 1 }, { type: 'integer' }], description: doc };
    case 'count':
      return { type: 'integer', minimum: 0, description: doc };
    case 'integer':
      return { type: 'integer', description: doc };
    case 'positive':
      return { type: 'integer', minimum: 1, description: doc };
    case 'share':
      return { type: 'integer', minimum: 1, maximum: 100, description: doc };
    case 'time':
      return { type: 'number', minimum: 0, description: doc };
    case 'text':
      return { type: 'string', description: doc };
    case 'blocks':
      return { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 }, description: doc };
    case 'block':
      return { type: 'integer', minimum: 0, description: doc };
    case 'key':
      return { type: 'string', minLength: 1, description: doc };
    case 'keys':
      return { type: 'array', items: { type: 'string', minLength: 1 }, description: doc };
    case 'version':
      return { enum: [...TRACE_VERSIONS], description: doc };
    case 'batch':
      return {
        type: 'array',
        minItems: 1,
        description: doc,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['req', 'tokens'],
          properties: {
            req: kindSchema('id', 'request id'),
            tokens: kindSchema('positive', 'positions computed in this step'),
            from: kindSchema('count', '(since 3; required in v3) the first position computed'),
            draft: kindSchema('count', '(since 3) how many of the last positions hold unverified draft tokens'),
            ids: { type: 'array', items: { type: 'integer', minimum: 0 }, description: '(since 3) the token id written at each position' },
          },
        },
      };
    case 'counts':
      return { type: 'object', additionalProperties: { type: 'integer', minimum: 0 }, description: doc };
    case 'split':
      return {
        type: 'object',
        additionalProperties: false,
        required: ['prefill', 'decode'],
        description: doc,
        properties: { prefill: kindSchema('share', 'prefill share'), decode: kindSchema('share', 'decode share') },
      };
    case 'groups':
      return {
        type: 'array',
        minItems: 1,
        maxItems: 64,
        description: doc,
        items: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: kindSchema('id', 'group id'), window: kindSchema('positive', 'sliding window W (query position included)') } },
      };
    case 'servers':
      return {
        type: 'array',
        minItems: 1,
        maxItems: 1024,
        description: doc,
        items: { type: 'object', additionalProperties: false, required: ['id', 'buffers'], properties: { id: kindSchema('id', 'attention server id'), buffers: { type: 'integer', minimum: 1, maximum: 1024, description: 'its buffers' } } },
      };
    case 'workers':
      return {
        type: 'array',
        minItems: 1,
        description: doc,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['id', 'role', 'share'],
          properties: {
            id: kindSchema('id', 'worker id'),
            role: kindSchema({ enum: ROLES }, 'worker role'),
            share: kindSchema('share', 'share of SMs in percent'),
            gpu: kindSchema('count', 'GPU index, default 0'),
          },
        },
      };
  }
}

function objectSchema(fields: Record<string, { kind: HeaderFieldSpec['kind']; optional?: true; doc: string }>, extra: Record<string, unknown>) {
  const properties: Record<string, unknown> = { ...extra };
  const required = Object.keys(extra);
  for (const [name, spec] of Object.entries(fields)) {
    properties[name] = kindSchema(spec.kind, spec.doc);
    if (!spec.optional) required.push(name);
  }
  return { type: 'object', additionalProperties: false, required, properties };
}

/** The JSON Schema of one trace line: the header or any event. */
export function traceSchema(): Record<string, unknown> {
  const events = EVENT_NAMES.map((name) => ({
    title: name,
    description: `${(EVENTS[name] as EventSpec).since ? `(since ${(EVENTS[name] as EventSpec).since}) ` : ''}${EVENTS[name].doc}`,
    ...objectSchema(
      { ...(EVENTS[name].fields as Record<string, FieldSpec>), note: { kind: 'text', optional: true, doc: 'free text, ignored by the checker' } },
      { ev: { const: name }, t: kindSchema('time', 'time in seconds; never decreases along the trace') },
    ),
  }));
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'urn:pdspec:trace-format',
    title: `pdspec trace format v${TRACE_VERSIONS.join(', v')}: one JSON object per line, the header first, then events (later events and fields are marked "since 2", "since 3" or "since 4")`,
    $defs: {
      header: { title: 'header', description: 'The first line of every trace.', ...objectSchema(HEADER_FIELDS, {}) },
      event: { oneOf: events },
    },
    oneOf: [{ $ref: '#/$defs/header' }, { $ref: '#/$defs/event' }],
  };
}

/** The event table of docs/trace-format.md. */
export function eventTableMarkdown(): string {
  const kindText = (k: Kind): string => (typeof k === 'object' ? k.enum.map((v) => `\`${v}\``).join(' \\| ') : k);
  const rows = EVENT_NAMES.map((name) => {
    const spec = EVENTS[name];
    const fields = Object.entries(spec.fields as Record<string, FieldSpec>)
      .map(([k, s]) => `\`${k}\`${s.optional ? '?' : ''}: ${kindText(s.kind)}${s.since ? ` (v${s.since})` : ''}`)
      .join(', ');
    const since = (spec as EventSpec).since;
    return `| \`${name}\` | ${fields || 'none'} | ${since ? `(trace v${since}) ` : ''}${spec.doc} | ${spec.emit} |`;
  });
  return ['| event | fields (besides `ev`, `t`) | meaning | when an engine writes it |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** The header table of docs/trace-format.md. */
export function headerTableMarkdown(): string {
  const kindText = (k: HeaderFieldSpec['kind']): string =>
    typeof k === 'object' ? ('const' in k ? `\`${JSON.stringify(k.const)}\`` : k.enum.map((v) => `\`${v}\``).join(' \\| ')) : k;
  const rows = Object.entries(HEADER_FIELDS).map(([name, s]) => `| \`${name}\`${s.optional ? '?' : ''} | ${kindText(s.kind)} | ${s.doc} |`);
  return ['| field | kind | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
