// What each serving mode is, as data: its GPUs and pools, share rule and epoch-0 split (from the trace
// format's MODE_DEFAULTS, the one list of modes), whether a policy's split decisions resize it, which
// allocators it runs, and how a resize starts new workers. The engine's mode objects (co-located.ts,
// disaggregated.ts, unified.ts) carry the behaviour; configuration, tools and tests read this table.
import { MODE_DEFAULTS, MODES, type TraceHeader } from '../../spec/trace-format.ts';
import type { Split } from '../policy-api.ts';

export type Mode = TraceHeader['mode'];
export type Allocator = TraceHeader['allocator'];
export type ShareRule = TraceHeader['shareRule'];

import type { ResizeMechanism } from '../executors/step-executor.ts';

export type { ResizeMechanism };

export interface ModeInfo {
  readonly name: Mode;
  /** GPUs, each with its own KV pool. */
  readonly gpus: number;
  readonly shareRule: ShareRule;
  readonly defaultSplit: Split;
  /** Whether a split decision resizes the partition; otherwise each phase has its whole GPU, or one worker runs both. */
  readonly resizable: boolean;
  readonly defaultAllocator: Allocator;
  /** Allocators the mode cannot run, with the reason. */
  readonly refusedAllocators: Readonly<Partial<Record<Allocator, string>>>;
  /** Whether the decode side admits prefilled requests, and may reject them (decodeAdmitTimeout). */
  readonly decodeAdmission: boolean;
  readonly resizeMechanism: ResizeMechanism;
}

export { MODES };

function info(name: Mode, rest: Omit<ModeInfo, 'name' | 'gpus' | 'shareRule' | 'defaultSplit'>): ModeInfo {
  const d = MODE_DEFAULTS[name];
  return { name, gpus: d.gpus, shareRule: d.shareRule, defaultSplit: { prefill: d.split[0], decode: d.split[1] }, ...rest };
}

export const MODE_INFO: Readonly<Record<Mode, ModeInfo>> = {
  // semi-PD's code: only the decode process allocates (the prefill process writes into what it was given).
  'semi-pd': info('semi-pd', { resizable: true, defaultAllocator: 'decode-owned', refusedAllocators: {}, decodeAdmission: false, resizeMechanism: 'worker-start' }),
  nexus: info('nexus', { resizable: true, defaultAllocator: 'lock', refusedAllocators: {}, decodeAdmission: false, resizeMechanism: 'context-switch' }),
  disaggregated: info('disaggregated', {
    resizable: false,
    defaultAllocator: 'lock',
    refusedAllocators: { 'decode-owned': `the disaggregated mode has one pool per GPU, each allocated by its own worker: use allocator 'lock'` },
    decodeAdmission: true,
    resizeMechanism: 'worker-start',
  }),
  unified: info('unified', { resizable: false, defaultAllocator: 'lock', refusedAllocators: {}, decodeAdmission: false, resizeMechanism: 'worker-start' }),
};

export function isMode(name: unknown): name is Mode {
  return typeof name === 'string' && (MODES as readonly string[]).includes(name);
}
