// The bug-zoo faults (docs/bug-zoo.md): each reintroduces the mechanism of a real bug into the engine, so
// that the kit can show it catches the bug. One file per fault (zNN-*.ts) declares where it can show, what
// catches it, and the seams (seams.ts) it patches; all are off by default. docs/engine.md's fault table is
// generated from FAULTS. Z14 is a policy bug (engine/policies/semi-pd-z14.ts), not an engine fault.
import z01 from './z01-fork-shares-last-block.ts';
import z02 from './z02-prefix-cache-keeps-evicted.ts';
import z03 from './z03-finish-frees-in-flight.ts';
import z04 from './z04-preemption-cascade.ts';
import z05 from './z05-free-twice-on-aborted-transfer.ts';
import z06 from './z06-abort-waits-for-ended-transfer.ts';
import z07 from './z07-rejection-not-told.ts';
import z08 from './z08-overlap-double-free.ts';
import z09 from './z09-leak-partial-block-on-retract.ts';
import z10 from './z10-abort-forgets-queued-after-transfer.ts';
import z11 from './z11-abort-frees-during-transfer.ts';
import z12 from './z12-duplicate-release.ts';
import z13 from './z13-lockless-allocator.ts';
import z15 from './z15-drop-fifo-on-resize.ts';
import z16 from './z16-lock-starts-at-parent.ts';
import z17 from './z17-lock-skips-counters.ts';
import z18 from './z18-bonus-kv-mismatch.ts';
import z19 from './z19-verify-advances-whole-block.ts';
import z20 from './z20-window-applied-to-global-layers.ts';
import z21 from './z21-eager-cache-insert.ts';
import z22 from './z22-refused-admission-keeps-hits.ts';
import c01 from './c01-ping-pong-flips-early.ts';
import c02 from './c02-lost-task-forgotten.ts';
import c03 from './c03-redispatch-after-return.ts';
import type { FaultPatch } from './fault.ts';

export type { FaultCheck, FaultInfo, FaultMode, FaultPatch, SelfCheck, WorkloadNeed } from './fault.ts';

/** Every engine fault, in bug-zoo order. Where two patch the same seam, the earlier one sees the call first. */
export const FAULTS = [z01, z02, z03, z04, z05, z06, z07, z08, z09, z10, z11, z12, z13, z15, z16, z17, z18, z19, z20, z21, z22] as const;

export type FaultName = (typeof FAULTS)[number]['name'];

/**
 * The core-attention disaggregation faults (engine/faults/cNN-*.ts, docs/cad.md): mechanisms of attention
 * servers (docs/cad.md), with no bug-zoo row, so they are kept out of FAULTS and FAULT_NAMES (the zoo's table,
 * self-test and campaign); each needs the attentionServers option.
 */
export const CAD_FAULTS = [c01, c02, c03] as const;

export type CadFaultName = (typeof CAD_FAULTS)[number]['name'];

export const CAD_FAULT_NAMES: readonly CadFaultName[] = CAD_FAULTS.map((f) => f.name);

/** The fault switches of EngineOptions.faults: each one's documentation is its file. */
export type EngineFaults = { [N in FaultName | CadFaultName]?: boolean };

/** Every fault switch; Z12's `duplicateRelease` first, the one the CLI's examples use. */
export const FAULT_NAMES: readonly FaultName[] = ['duplicateRelease', ...FAULTS.map((f) => f.name).filter((n) => n !== 'duplicateRelease')];

/** The faults switched on (`true`), in FAULTS order, then CAD_FAULTS. */
export function enabledFaults(faults: EngineFaults): FaultPatch[] {
  return [...FAULTS, ...CAD_FAULTS].filter((f) => faults[f.name] === true);
}
