// Arbitraries for the property campaign, composed from small named pieces: request lengths (from simple
// distributions, or sampled from the Azure traces), arrivals, workloads, engine configurations, and the
// environment's commands — run the engine, abort a request, resize — that interleave with the engine's own
// events. Everything shrinks toward small, readable cases: few requests, one token, no gaps.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { MODES, type Allocator, type Mode } from '../engine/engine.ts';
import { enabledFaults, type EngineFaults } from '../engine/faults/index.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';

/** The engine configuration of one run, as plain data. */
export interface EngineSetup {
  mode: Mode;
  blocks: number;
  blockSize: number;
  allocator: Allocator;
  allocEvents: 'atomic' | 'steps';
  prefillChunk: number;
  unifiedChunk: number;
  maxBatch: number;
  seed: number;
  faults: EngineFaults;
  /** Other engine options a fault needs to show (e.g. asynchronous scheduling). */
  extra?: Record<string, unknown>;
}

export interface Scenario {
  setup: EngineSetup;
  workload: WorkloadRequest[];
}

/** What the environment does between engine events. */
export type Command = { kind: 'run'; events: number } | { kind: 'abort'; pick: number } | { kind: 'resize'; prefill: number; decode: number };

// ---------------------------------------------------------------------------------------------
// Lengths

/** Prompt lengths: mostly short, sometimes several blocks long. */
export const promptLength = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 8 }) }, { weight: 1, arbitrary: fc.integer({ min: 9, max: 40 }) });

/** Output lengths: short, so that runs end quickly. */
export const outputLength = fc.integer({ min: 1, max: 10 });

const here = dirname(fileURLToPath(import.meta.url));
let azureRows: [number, number][] | null = null;

/** (prompt, output) rows of the Azure conversation trace, scaled down 64× so that runs stay small. */
function azureLengths(): [number, number][] {
  if (!azureRows) {
    const text = readFileSync(join(here, '..', 'data', 'azure-llm-inference-2023', 'AzureLLMInferenceTrace_conv.csv'), 'utf8');
    azureRows = text
      .trim()
      .split('\n')
      .slice(1, 2001)
      .map((line) => {
        const [, prompt, output] = line.split(',');
        return [Math.max(1, Math.round(Number(prompt) / 64)), Math.max(1, Math.round(Number(output) / 64))];
      });
  }
  return azureRows;
}

/** A (prompt, output) pair drawn from a distribution, or sampled from the Azure conversation trace. */
export const lengths = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(promptLength, outputLength) },
  { weight: 1, arbitrary: fc.nat({ max: 1999 }).map((i) => azureLengths()[i]) },
);

// ---------------------------------------------------------------------------------------------
// Workloads

/** Milliseconds between arrivals: often none (bursts), sometimes long. */
export const arrivalGap = fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 50 }) });

/** A shared prompt prefix (one of two system prompts), or none; shrinks to none. */
export const promptPrefix = fc.option(fc.record({ id: fc.constantFrom('sysA', 'sysB'), length: fc.integer({ min: 1, max: 16 }) }), { freq: 2 });

/** Parallel samples of one prompt (a fork after prefill); shrinks to 1. */
export const samples = fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) });

const requestPiece = fc.record({ lengths, gap: arrivalGap, prefix: promptPrefix, n: samples });

/** Requests r0, r1, … arriving in order, some sharing a prompt prefix or asking for parallel samples. */
export function workload(maxRequests: number): fc.Arbitrary<WorkloadRequest[]> {
  return fc.array(requestPiece, { minLength: 1, maxLength: maxRequests }).map((pieces) => {
    let t = 0;
    return pieces.map(({ lengths: [prompt, output], gap, prefix, n }, i) => {
      t += gap / 1000;
      const r: WorkloadRequest = { id: `r${i}`, arrival: Number(t.toFixed(3)), prompt, output };
      if (prefix) r.prefix = { id: prefix.id, length: Math.min(prefix.length, prompt) };
      if (n > 1) r.n = n;
      return r;
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Engine configurations

export const modes: readonly Mode[] = MODES;

/** The shape of an engine configuration, independent of the workload (so that both shrink on their own). */
export interface SetupShape {
  mode: Mode;
  blockSize: number;
  /** Pool size in units of the longest request's blocks: 1 is just enough (KV exhaustion, preemption). */
  room: number;
  allocator: Allocator;
  allocEvents: 'atomic' | 'steps';
  chunk: number;
  maxBatch: number;
  seed: number;
  /** vLLM-style asynchronous scheduling: step N+1 is launched before step N's stop conditions are processed. */
  asyncScheduling: boolean;
  /** Shared KV (trace v2): cached prompt-prefix blocks reused by reference, forks sharing their parent's blocks. */
  prefixCaching: boolean;
  /** Which cache the trace declares. */
  prefixCache: 'hash' | 'radix';
  /**
   * Speculative decoding (trace v3) with the cost model's oracle drafter: drafts per verify and the chance
   * that a draft is right; null: off. Not with asynchronous scheduling (the engine refuses the pair).
   */
  speculative: { k: number; acceptance: number; freeRejected: boolean } | null;
  /**
   * Trace v3's model options: layer groups with a sliding window of this many positions (null: none); state
   * slots per GPU (null: none); preemption of requests still prefilling (unified mode). The engine refuses
   * some pairs (a window or slots with a prefix cache, slots with disaggregation or parallel samples): those
   * are dropped for the run, the option `extra` asks for winning.
   */
  slidingWindow: number | null;
  stateSlots: number | null;
  preemptPrefilling: boolean;
  /**
   * Trace v4 (unified mode only): the core attention on attention servers, each item's query positions in
   * shards; a server lost at a step of the run (0: none); decode attention there too or not. Not with a
   * sliding window (dropped for the run unless `extra` asks for it).
   */
  attentionServers: { servers: number; buffers: number; shards: number; epsilon: number; lossAtStep: number; offload: 'all' | 'prefill' } | null;
}

export function setupShape(allowed: readonly Mode[]): fc.Arbitrary<SetupShape> {
  return fc.record({
    mode: fc.constantFrom(...allowed),
    blockSize: fc.constantFrom(1, 2, 4),
    room: fc.integer({ min: 1, max: 4 }),
    allocator: fc.constantFrom<Allocator>('lock', 'decode-owned'),
    allocEvents: fc.constantFrom<'atomic' | 'steps'>('atomic', 'steps'),
    chunk: fc.constantFrom(8192, 2, 4),
    maxBatch: fc.integer({ min: 1, max: 8 }),
    seed: fc.nat({ max: 1000 }),
    asyncScheduling: fc.boolean(),
    prefixCaching: fc.boolean(),
    prefixCache: fc.constantFrom<'hash' | 'radix'>('hash', 'radix'),
    speculative: fc.option(fc.record({ k: fc.integer({ min: 1, max: 4 }), acceptance: fc.constantFrom(0.5, 0, 0.8, 1), freeRejected: fc.boolean() }), { freq: 2 }),
    slidingWindow: fc.option(fc.integer({ min: 1, max: 8 }), { freq: 3 }),
    stateSlots: fc.option(fc.integer({ min: 1, max: 4 }), { freq: 3 }),
    preemptPrefilling: fc.boolean(),
    attentionServers: fc.option(
      fc.record({
        servers: fc.integer({ min: 1, max: 3 }),
        buffers: fc.integer({ min: 1, max: 2 }),
        shards: fc.integer({ min: 1, max: 3 }),
        epsilon: fc.constantFrom(0.1, 0, 1),
        lossAtStep: fc.integer({ min: 0, max: 6 }),
        offload: fc.constantFrom<'all' | 'prefill'>('prefill', 'all'),
      }),
      { freq: 3 },
    ),
  });
}

/** The engine setup of a shape for a workload. */
export function setupFor(shape: SetupShape, work: readonly WorkloadRequest[], faults: EngineFaults, extra?: Record<string, unknown>): EngineSetup {
  // Room for the longest request, and for its copies when it forks into parallel samples.
  const longest = Math.max(...work.map((r) => Math.ceil((r.prompt + r.output) / shape.blockSize) * (r.n ?? 1)));
  const splitModes = shape.mode === 'semi-pd' || shape.mode === 'nexus';
  const options = engineExtra(shape, work, faults, extra);
  // A sliding window's second layer group takes a block for every block of the first.
  const groups = options.slidingWindow ? 2 : 1;
  return {
    mode: shape.mode,
    blocks: longest * groups * shape.room + 1,
    blockSize: shape.blockSize,
    allocator: splitModes ? shape.allocator : 'lock',
    allocEvents: options.slidingWindow ? 'atomic' : shape.allocEvents,
    prefillChunk: shape.chunk,
    unifiedChunk: shape.chunk === 8192 ? 0 : shape.chunk,
    maxBatch: shape.maxBatch,
    seed: shape.seed,
    faults,
    extra: options,
  };
}

/**
 * The shape's engine options beyond the basic ones, then `extra` (a fault's). Speculative decoding and
 * asynchronous scheduling exclude each other: the one `extra` asks for wins, else asynchronous scheduling.
 */
function engineExtra(shape: SetupShape, work: readonly WorkloadRequest[], faults: EngineFaults, extra: Record<string, unknown> | undefined): Record<string, unknown> {
  const speculative = shape.speculative ? { speculative: { drafter: 'oracle', ...shape.speculative } } : {};
  const v3: Record<string, unknown> = {};
  if (shape.slidingWindow !== null) v3.slidingWindow = shape.slidingWindow;
  if (shape.stateSlots !== null) v3.stateSlots = shape.stateSlots;
  if (shape.preemptPrefilling) v3.preemptPrefilling = true;
  if (shape.attentionServers !== null && shape.mode === 'unified') {
    const { lossAtStep, ...a } = shape.attentionServers;
    // A loss needs another server to take the lost one's tasks.
    v3.attentionServers = lossAtStep > 0 && a.servers > 1 ? { ...a, lossAtStep } : a;
  }
  const out: Record<string, unknown> = { asyncScheduling: shape.asyncScheduling, prefixCaching: shape.prefixCaching, ...(shape.prefixCaching ? { prefixCache: shape.prefixCache } : {}), ...speculative, ...v3, ...extra };
  if (out.speculative && out.asyncScheduling) {
    if (extra?.speculative) out.asyncScheduling = false;
    else delete out.speculative;
  }
  // The v3 model options, where the engine takes them: what `extra` asks for wins over the shape's draw.
  const asked = (key: string) => extra !== undefined && extra[key] !== undefined;
  const stepsForced = shape.allocEvents === 'steps' || extra?.allocEvents === 'steps' || enabledFaults(faults).some((f) => f.settings?.allocEvents === 'steps');
  if (out.slidingWindow !== undefined || out.stateSlots !== undefined) {
    if (asked('slidingWindow') || asked('stateSlots')) out.prefixCaching = false;
    else if (out.prefixCaching) {
      delete out.slidingWindow;
      delete out.stateSlots;
    }
  }
  if (out.slidingWindow !== undefined && stepsForced && !asked('slidingWindow')) delete out.slidingWindow;
  if (out.attentionServers !== undefined && out.slidingWindow !== undefined) {
    if (asked('attentionServers')) delete out.slidingWindow;
    else delete out.attentionServers;
  }
  if (out.stateSlots !== undefined && !asked('stateSlots') && (shape.mode === 'disaggregated' || work.some((r) => (r.n ?? 1) > 1))) delete out.stateSlots;
  if (out.preemptPrefilling && shape.mode !== 'unified' && !asked('preemptPrefilling')) delete out.preemptPrefilling;
  if (!out.prefixCaching) delete out.prefixCache;
  return out;
}

export function scenario(allowed: readonly Mode[], faults: EngineFaults = {}, maxRequests = 6, extra?: Record<string, unknown>): fc.Arbitrary<Scenario> {
  return fc.record({ work: workload(maxRequests), shape: setupShape(allowed) }).map(({ work, shape }) => ({ setup: setupFor(shape, work, faults, extra), workload: work }));
}

// ---------------------------------------------------------------------------------------------
// Commands

/** Run the engine for a few of its own events. */
export const runCommand: fc.Arbitrary<Command> = fc.integer({ min: 1, max: 12 }).map((events) => ({ kind: 'run', events }));
/**
 * A client aborts one of the requests live at that moment (the n-th, cyclically): relative, so that the
 * command keeps its meaning when shrinking removes other requests.
 */
export const abortCommand: fc.Arbitrary<Command> = fc.nat({ max: 7 }).map((pick) => ({ kind: 'abort', pick }));
/** The partition controller asks for a split (a resize, where the mode has one). */
export const resizeCommand: fc.Arbitrary<Command> = fc
  .record({ prefill: fc.integer({ min: 10, max: 100 }), decode: fc.integer({ min: 10, max: 100 }) })
  .map(({ prefill, decode }) => ({ kind: 'resize', prefill, decode }));

/** A schedule of environment actions: mostly running, with aborts and resize storms mixed in. */
export const commands = fc.array(fc.oneof({ weight: 4, arbitrary: runCommand }, { weight: 1, arbitrary: abortCommand }, { weight: 1, arbitrary: resizeCommand }), {
  maxLength: 12,
});

export function describeCommand(c: Command): string {
  return c.kind === 'run' ? `run ${c.events}` : c.kind === 'abort' ? `abort live#${c.pick}` : `resize ${c.prefill}/${c.decode}`;
}
