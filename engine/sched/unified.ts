// The unified worker's scheduler (one worker runs both phases): SplitFuse chunked prefill (decode tokens
// first, then prompt chunks up to the step's token budget `unifiedChunk`), or, with `unifiedChunk` 0, vLLM
// without chunked prefill (a step is whole prompts, or all decode).
import type { Rooms } from '../rooms.ts';
import { compact, type Req, type Worker } from '../state.ts';
import { addDecodeItems } from './decode.ts';
import { ownPrefilling, RoleScheduler } from './scheduler.ts';

/** A step being built: per item its request, positions and phase (1 decode, 0 prefill). */
interface Batch {
  reqs: Req[];
  toks: number[];
  flags: number[];
}

export class UnifiedScheduler extends RoleScheduler {
  start(w: Worker): void {
    compact(w.running, (r) => r.state === 'decoding' && r.server === w);
    ownPrefilling(w);
    const batch: Batch = { reqs: [], toks: [], flags: [] };
    if (this.rooms.config.unifiedChunk === 0) this.wholePromptsOrDecode(w, batch);
    else this.splitFuse(w, batch);
    if (batch.reqs.length > 0) this.rooms.steps.begin(w, batch.reqs, batch.toks, batch.flags);
  }

  /** vLLM without chunked prefill: a step is all prefill (whole prompts, prefill first) or all decode. */
  private wholePromptsOrDecode(w: Worker, batch: Batch): void {
    const { lifecycle } = this.rooms;
    const preemptionsBefore = lifecycle.preemptions;
    this.addWholePrompts(w, batch);
    if (batch.reqs.length > 0) return;
    addDecode(this.rooms, w, batch);
    // Retracting the whole batch may have made room for a prompt.
    if (batch.reqs.length === 0 && lifecycle.preemptions !== preemptionsBefore) this.addWholePrompts(w, batch);
  }

  /** SplitFuse: decode tokens first, then prompt chunks up to the step's token budget. */
  private splitFuse(w: Worker, batch: Batch): void {
    const { config, waiting, kv } = this.rooms;
    const { reqs, toks, flags } = batch;
    addDecode(this.rooms, w, batch, config.unifiedChunk);
    let left = config.unifiedChunk;
    for (let i = 0; i < toks.length; i++) left -= toks[i];
    left = Math.max(0, left);
    for (const r of w.prefilling) {
      if (left === 0) break;
      if (r.state !== 'prefilling') continue; // retracted for a decode item's room
      const n = Math.min(r.length - r.computed, left);
      reqs.push(r);
      toks.push(n);
      flags.push(0);
      left -= n;
    }
    for (let head = waiting.head(); head && left > 0 && kv.canAdmit(head, w.gpu) && this.hasBatchRoom(w); head = waiting.head()) {
      const n = Math.min(this.admit(head, w), left);
      reqs.push(head);
      toks.push(n);
      flags.push(0);
      left -= n;
    }
  }

  /** Whole prompts: the first whatever its length, then more while they fit the prefill budget. */
  private addWholePrompts(w: Worker, batch: Batch): void {
    const { config, waiting, kv } = this.rooms;
    const { reqs, toks, flags } = batch;
    let left = config.prefillChunk;
    // Requests already given to this worker (a fork's copy) go first, whole.
    for (const r of w.prefilling) {
      if (r.state !== 'prefilling' || r.server !== w) continue;
      reqs.push(r);
      toks.push(r.length - r.computed);
      flags.push(0);
      left -= r.length - r.computed;
    }
    for (let head = waiting.head(); head && kv.canAdmit(head, w.gpu) && this.hasBatchRoom(w); head = waiting.head()) {
      if (reqs.length > 0 && head.length > left) break;
      const n = this.admit(head, w);
      reqs.push(head);
      toks.push(n);
      flags.push(0);
      left -= n;
    }
  }

  /** Room for one more request among decoding and prefilling ones. */
  private hasBatchRoom(w: Worker): boolean {
    return w.running.length + w.prefilling.length < this.rooms.config.maxBatch;
  }
}

/**
 * The decode items of `w`'s running batch, first in the step, one position each (with speculative decoding,
 * and their drafts within the step's token `budget`).
 */
function addDecode(rooms: Rooms, w: Worker, batch: Batch, budget = Number.POSITIVE_INFINITY): void {
  addDecodeItems(rooms, w, batch.reqs, budget);
  for (let i = batch.toks.length; i < batch.reqs.length; i++) {
    batch.toks.push(1 + batch.reqs[i].drafts.length);
    batch.flags.push(1);
  }
}
