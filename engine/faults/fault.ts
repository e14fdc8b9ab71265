// What a fault file declares: the bug-zoo row it reproduces and its source, the seams it patches, where it
// can show (modes, engine options, workload features), what catches it, and which of the engine's own
// self-checks it relaxes (a fault that breaks ownership on purpose must not be stopped by the pool's
// assertions before the spec sees the trace).
import type { AttentionServerOptions, SpeculativeOptions } from '../config.ts';
import type { Mode } from '../modes/info.ts';
import type { SeamContext, SeamName, SeamPatch } from './seams.ts';

/** Modes in which a fault can show. */
export type FaultMode = Mode;

/** Workload features a fault needs before it can show. */
export type WorkloadNeed =
  /** Some requests have `abortAt`, landing in the window the fault describes (see `window`). */
  | 'aborts'
  /** Some requests share a `prefix` (same id, length ≥ one block), arriving after one another. */
  | 'sharedPrefix'
  /** Some requests have `n` ≥ 2 (parallel samples). */
  | 'parallelSamples'
  /** KV pressure: the pool is small for the prompts and outputs, so decode workers preempt. */
  | 'kvPressure'
  /** Requests that decode for several steps (outputs ≥ 2 tokens), so that a finish follows a decode step. */
  | 'multiTokenOutputs'
  /** Prompt + generated lengths that are not multiples of the block size. */
  | 'unalignedLengths'
  /** The decode pool fills up while prefilled requests wait for it (disaggregated). */
  | 'decodeBacklog';

/** What the campaign's check is: the spec's verdict on the trace, or the trace-level preemption rule. */
export type FaultCheck =
  | { kind: 'spec'; rules: readonly string[] }
  /**
   * Trace-level liveness rule (not in the spec): after `preempt v` by worker W, W does not preempt another
   * request before a `free` of v's blocks. The fault-off engine keeps it on every run.
   */
  | { kind: 'trace'; rules: readonly ['NoPreemptionCascade'] };

/** An engine self-check a fault may relax. `blockOwners`: the pools' owner assertions on take and release. */
export type SelfCheck = 'blockOwners';

export interface FaultInfo<N extends string = string> {
  name: N;
  /** Bug-zoo row. */
  zoo: string;
  /** The upstream report or pull request whose bug it reproduces. */
  source: string;
  /** The seams it patches. */
  seams: readonly SeamName[];
  /** The mechanism, in one sentence. */
  says: string;
  /** Modes in which it can manifest. */
  modes: readonly FaultMode[];
  /** Engine options it needs (spread them into EngineOptions); `{}` when the defaults do. */
  options: Readonly<{
    asyncScheduling?: true;
    prefixCaching?: true;
    prefixCache?: 'radix';
    allocEvents?: 'steps';
    allocator?: 'lock';
    /** Any finite number of seconds ≥ 0 (the value shown is a good default for small workloads). */
    decodeAdmitTimeout?: number;
    /** Speculative decoding with this drafter (the oracle's acceptance decides which verifies show the fault). */
    speculative?: SpeculativeOptions;
    /** Layer groups with a sliding window of this many positions. */
    slidingWindow?: number;
    /** Core-attention disaggregation with these attention servers (the CAD faults, engine/faults/cNN-*.ts). */
    attentionServers?: AttentionServerOptions;
  }>;
  /** Workload features it needs. */
  workload: readonly WorkloadNeed[];
  /** It needs a policy that resizes (semi-PD and Nexus only). */
  resizing?: true;
  /** When an abort must land, for the abort faults. */
  window?: string;
  /** Anything else a campaign should know. */
  note?: string;
  /** What catches it. */
  check: FaultCheck;
  /** Engine self-checks it turns off, and why. */
  relaxes: readonly SelfCheck[];
  /** Engine settings it forces: how allocations are written, and whether the pool lock is taken. */
  settings?: Readonly<{ allocEvents?: 'steps'; poolLocking?: false }>;
}

export interface FaultPatch<N extends string = string> extends FaultInfo<N> {
  /** The seams it replaces, built for one engine. */
  patch(ctx: SeamContext): SeamPatch;
}

/** Declares a fault (keeps its name's literal type, so that the switch names are a union). */
export function defineFault<const N extends string>(fault: FaultPatch<N>): FaultPatch<N> {
  return fault;
}
