// What `pdspec explore` explores: the bound (how many requests, blocks, resizes, aborts, preemptions), the
// serving mode and allocator, and which spec variant. Everything is finite, so the search terminates.
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { makeHeader, type TraceHeader } from '../../spec/trace-format.ts';

export interface ExploreConfig {
  mode: TraceHeader['mode'];
  allocator: TraceHeader['allocator'];
  /** Requests that arrive, each with this prompt and output length (tokens). */
  requests: number;
  prompt: number;
  output: number;
  /** KV blocks per pool, and tokens per block. */
  blocks: number;
  blockSize: number;
  /** Largest prefill chunk (positions per step); `prompt` or more means no chunking. */
  chunk: number;
  /** Resizes that may happen, each to the next split of `splits`. */
  resizes: number;
  splits: { prefill: number; decode: number }[];
  /** Aborts and preemptions that may happen (0 turns them off). */
  aborts: number;
  preemptions: number;
  /**
   * Allocation as three events (query, take, commit) or as one. `auto`: one when the pool locks — the lock
   * makes the three a single atomic step, as nothing else touching the pool can come between them — and three
   * when it does not (the lockless variant), where their interleaving is the point.
   */
  allocSteps: 'three' | 'one' | 'auto';
  /**
   * Trace v2, shared KV: the requests' prompts carry cache keys (`prefixes`), and the engine may enter full
   * blocks in the prefix cache, hit them, evict them, fork a decoding request (`forks`) and copy a shared
   * block before writing it. Off: trace v1, one owner per block.
   */
  sharing: boolean;
  /** Trace v2: how the cache holds blocks (the header's `prefixCache`). */
  prefixCache: 'hash' | 'radix';
  /**
   * Trace v2: the key of each request's first full prompt block, by arrival (a request past the list gets a
   * key of its own). Requests with the same key have the same full prompt blocks (a later block's key is the
   * first key and its position), so they may hit each other's.
   */
  prefixes: string[];
  /** Trace v2: forks that may happen (each a new request in its parent's state). */
  forks: number;
  /**
   * Trace v3 (`--positions`): every batch item names its first position (`from`), and a prefilling request may
   * be preempted as well as a decoding one. Off: trace v1 (or v2 with `sharing`).
   */
  positions: boolean;
  /** Trace v3: draft tokens a speculative verify carries (1..drafts; 0: no speculative decoding). */
  drafts: number;
  /** Trace v3: verifies that may happen (batch items with drafts), each ended with every accepted count 0..k. */
  verifies: number;
  /**
   * Trace v3: 0 for one layer group; W for two (the header's `groups`): `full` attention and `swa`, a sliding
   * window of W positions whose oldest blocks a live request may free.
   */
  window: number;
  /** Trace v3: state slots per GPU (the header's `stateSlots`, a hybrid model's recurrent states); 0: none. */
  stateSlots: number;
  /**
   * Trace v4, core-attention disaggregation: attention servers (0: none), each with `cadBuffers` buffers;
   * every step item's query positions are split into `cadShards` shards (at most one per position), each a
   * task dispatched to a server, computed, and read back before the step ends; `serverLosses` servers may be
   * lost, sending their unfinished tasks back to be dispatched again.
   */
  cadServers: number;
  cadBuffers: number;
  cadShards: number;
  serverLosses: number;
  /** Canonical hashing under block and request symmetry. */
  symmetry: boolean;
  /** A spec variant (see variants.ts), or null for the reference spec. */
  variant: string | null;
  /** Stop after this many distinct states (a guard against running out of memory). */
  maxStates: number;
  /** Resize to the split a policy decides in each state, instead of `splits` (`--policy`; not serialised). */
  policy?: { name: string; decide: (sys: import('../../spec/system.ts').System) => { prefill: number; decode: number } | null };
}

// Memory per explored state, measured (docs/explore.md): 0.7–0.8 KB of JS heap (the BFS frontier's states)
// and 1.2–1.8 KB with the typed arrays (visited keys, the state graph) and their growth slack.
export const HEAP_BYTES_PER_STATE = 1024;
export const BYTES_PER_STATE = 2048;

/** The most states this process can hold: within half the machine's memory and most of the JS heap limit. */
export function stateCapacity(): number {
  return Math.floor(Math.min((totalmem() * 0.5) / BYTES_PER_STATE, (getHeapStatistics().heap_size_limit * 0.85) / HEAP_BYTES_PER_STATE));
}

export const DEFAULT_CONFIG: ExploreConfig = {
  mode: 'semi-pd',
  allocator: 'lock',
  requests: 3,
  prompt: 2,
  output: 2,
  blocks: 6,
  blockSize: 2,
  chunk: 2,
  resizes: 1,
  splits: [{ prefill: 60, decode: 100 }],
  aborts: 1,
  preemptions: 1,
  allocSteps: 'auto',
  sharing: false,
  prefixCache: 'hash',
  prefixes: [],
  forks: 0,
  positions: false,
  drafts: 0,
  verifies: 0,
  window: 0,
  stateSlots: 0,
  cadServers: 0,
  cadBuffers: 2,
  cadShards: 2,
  serverLosses: 0,
  symmetry: true,
  variant: null,
  maxStates: Math.min(5_000_000, stateCapacity()),
};

/**
 * The default bound of shared KV (trace v2, `--sharing`): two requests whose prompts share their first full
 * block (key `a`), in semi-PD on one pool of 4 blocks of 2 tokens. Prompts of 3 tokens make that block
 * cacheable and hittable (a hit never covers the last position); an output of 2 makes a decode step that
 * writes the block a fork shares, so that it must be copied first. Pressure on the pool brings evictions.
 */
export const SHARING_CONFIG: ExploreConfig = {
  ...DEFAULT_CONFIG,
  requests: 2,
  prompt: 3,
  output: 2,
  blocks: 4,
  blockSize: 2,
  chunk: 3,
  resizes: 0,
  aborts: 1,
  preemptions: 1,
  sharing: true,
  prefixes: ['a', 'a'],
  forks: 1,
};

/**
 * The default bound of trace v3 (`--positions`): two requests in a unified engine whose layers form two groups,
 * full attention and a sliding window of 2 positions, over one pool of BLOCKS blocks of 2 tokens. One speculative
 * verify of one draft may happen, ended with the draft accepted or rejected; a request past its window may free
 * its oldest sliding-window block; one preemption, which may take a request still prefilling (v3).
 */
export const V3_CONFIG: ExploreConfig = {
  ...DEFAULT_CONFIG,
  mode: 'semi-pd',
  requests: 2,
  prompt: 3,
  output: 3,
  blocks: 6,
  blockSize: 2,
  chunk: 2,
  resizes: 0,
  aborts: 1,
  preemptions: 1,
  positions: true,
  drafts: 2,
  verifies: 1,
  window: 2,
  stateSlots: 0,
};

/**
 * The default bound of core-attention disaggregation (trace v4, `--mode cad`): two requests (prompt 2,
 * output 2) in a unified engine, each prefill item split into two query shards (tasks) and each decode item
 * one, two attention servers of two buffers each (ping-pong), one server loss and one abort.
 */
export const CAD_CONFIG: ExploreConfig = {
  ...DEFAULT_CONFIG,
  mode: 'unified',
  requests: 2,
  prompt: 2,
  output: 2,
  blocks: 4,
  blockSize: 2,
  chunk: 2,
  resizes: 0,
  aborts: 1,
  preemptions: 0,
  positions: true,
  cadServers: 2,
  cadBuffers: 2,
  cadShards: 2,
  serverLosses: 1,
};

/** The attention servers of a v4 bound (the header's `attentionServers`), or none. */
export function serversOf(config: ExploreConfig): { id: string; buffers: number }[] | undefined {
  return config.cadServers > 0 ? Array.from({ length: config.cadServers }, (_, i) => ({ id: `A${i}`, buffers: config.cadBuffers })) : undefined;
}

/** The layer groups of a v3 bound (the header's `groups`), or none. */
export function groupsOf(config: ExploreConfig): { id: string; window?: number }[] | undefined {
  return config.positions && config.window > 0 ? [{ id: 'full' }, { id: 'swa', window: config.window }] : undefined;
}

/** The cache keys of request `i`'s full prompt blocks (trace v2). */
export function keysOf(config: ExploreConfig, i: number): string[] {
  const first = config.prefixes[i] ?? `k${i}`;
  const full = Math.floor(config.prompt / config.blockSize);
  return Array.from({ length: full }, (_, j) => (j === 0 ? first : `${first}${j}`));
}

/** The trace header of the explored system (also the header of every counterexample). */
export function headerOf(config: ExploreConfig): TraceHeader {
  return makeHeader({
    mode: config.mode,
    blocks: config.blocks,
    blockSize: config.blockSize,
    sms: 132,
    allocator: config.allocator,
    ...(config.sharing ? { version: 2 as const, prefixCache: config.prefixCache } : {}),
    ...(config.positions ? { version: config.cadServers > 0 ? (4 as const) : (3 as const) } : {}),
    ...(config.cadServers > 0 ? { attentionServers: serversOf(config) } : {}),
    ...(config.positions && config.window > 0 ? { groups: groupsOf(config) } : {}),
    ...(config.positions && config.stateSlots > 0 ? { stateSlots: config.stateSlots } : {}),
    source: `pdspec explore${config.variant ? ` --variant ${config.variant}` : ''}`,
  });
}

/** Checks a configuration; returns a list of problems (empty when it is usable). */
export function configProblems(c: ExploreConfig): string[] {
  const problems: string[] = [];
  const positive: (keyof ExploreConfig)[] = ['requests', 'prompt', 'output', 'blocks', 'blockSize', 'chunk', 'maxStates'];
  for (const k of positive) if (!Number.isInteger(c[k]) || (c[k] as number) < 1) problems.push(`--${kebab(k)} must be an integer ≥ 1`);
  for (const k of ['resizes', 'aborts', 'preemptions', 'forks', 'drafts', 'verifies', 'window', 'stateSlots'] as const) if (!Number.isInteger(c[k]) || c[k] < 0) problems.push(`--${kebab(k)} must be an integer ≥ 0`);
  if (typeof c.positions !== 'boolean') problems.push('positions must be true or false');
  if (c.positions && c.sharing) problems.push('--positions (trace v3) and --sharing (trace v2) are explored apart: choose one');
  if (!c.positions) for (const k of ['drafts', 'verifies', 'window', 'stateSlots'] as const) if (c[k] > 0) problems.push(`--${kebab(k)} needs --positions (trace v3)`);
  if (c.window > 0 && c.allocSteps === 'three') problems.push('--window with --alloc-steps three: an alloc_take names no layer group, so only one-step allocations give each group its blocks');
  for (const k of ['cadServers', 'serverLosses'] as const) if (!Number.isInteger(c[k]) || c[k] < 0) problems.push(`--${kebab(k)} must be an integer ≥ 0`);
  for (const k of ['cadBuffers', 'cadShards'] as const) if (!Number.isInteger(c[k]) || c[k] < 1 || c[k] > 4) problems.push(`--${kebab(k)} must be an integer in 1..4`);
  if (c.cadServers > 3) problems.push('--cad-servers above 3 is beyond what exhaustive search can finish');
  if (c.cadServers > 0 && !c.positions) problems.push('--cad-servers needs --positions (trace v4 includes v3)');
  if (c.cadServers > 0 && (c.window > 0 || c.drafts > 0 || c.stateSlots > 0)) problems.push('--cad-servers is explored without windows, drafts or state slots: choose one');
  if (c.serverLosses > c.cadServers) problems.push('--server-losses cannot exceed --cad-servers');
  if (c.drafts > 4) problems.push('--drafts above 4 is beyond what exhaustive search can finish');
  if (c.stateSlots > 8) problems.push('--state-slots above 8 is beyond what exhaustive search can finish');
  if (c.forks > 0 && !c.sharing) problems.push('--forks needs --sharing (a fork shares its parent\'s blocks: trace v2)');
  if (c.sharing && c.prompt <= c.blockSize) problems.push(`--sharing needs a prompt longer than a block (--prompt > --block-size ${c.blockSize}): a hit covers whole blocks and never the last position`);
  if (c.prefixCache !== 'hash' && c.prefixCache !== 'radix') problems.push('--prefix-cache must be hash or radix');
  if (!Array.isArray(c.prefixes) || !c.prefixes.every((p) => typeof p === 'string' && /^[A-Za-z0-9_.-]{1,16}$/.test(p))) problems.push('--prefixes must be a comma-separated list of keys (letters, digits, _ . -)');
  if (c.requests + c.forks > 8)
    problems.push(`${c.forks > 0 ? '--requests and --forks together' : '--requests'} above 8 is beyond what exhaustive search can finish; use the property campaign for large workloads`);
  if (c.blocks > 64) problems.push('--blocks above 64 is beyond what exhaustive search can finish');
  if (c.resizes > c.splits.length * 4) problems.push('more resizes than splits to resize to');
  if (c.mode === 'unified' && c.resizes > 0) problems.push('a unified worker has no split to resize; use --resizes 0');
  if (c.mode === 'disaggregated' && c.resizes > 0) problems.push('disaggregated 1P1D has no intra-GPU split to resize; use --resizes 0');
  const capacity = stateCapacity();
  if (c.maxStates > capacity)
    problems.push(
      `--max-states ${c.maxStates} would need about ${Math.round((c.maxStates * BYTES_PER_STATE) / 2 ** 20)} MiB; this process holds at most ${capacity} states ` +
        `(half of ${Math.round(totalmem() / 2 ** 20)} MiB of memory, and its JS heap limit of ${Math.round(getHeapStatistics().heap_size_limit / 2 ** 20)} MiB: raise it with NODE_OPTIONS=--max-old-space-size=MiB)`,
    );
  return problems;
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
