// The decode worker's scheduler (semi-PD, Nexus, disaggregated): continuous batching. Handed-off requests
// join from the worker's FIFO while the batch has room (the first token is appended as a request joins);
// each item of the batch gets room for its next position, preempting by retraction when the pool is short.
import type { Rooms } from '../rooms.ts';
import { compact, type Req, type Worker } from '../state.ts';
import { RoleScheduler } from './scheduler.ts';

export class DecodeScheduler extends RoleScheduler {
  start(w: Worker): void {
    if (w.retiring) return;
    const reqs = this.batch(w);
    if (reqs.length === 0) return;
    this.rooms.steps.begin(w, reqs, decodeTokens(reqs), new Array(reqs.length).fill(1));
    this.afterBegin(w);
  }

  /** Hook: `w` has just begun a decode step. */
  protected afterBegin(_w: Worker): void {}

  /** The next decode batch of `w`: its FIFO popped into the running batch, each item with room for its next position. */
  protected batch(w: Worker): Req[] {
    const { lifecycle } = this.rooms;
    compact(w.running, (r) => r.state === 'decoding' && r.server === w);
    const reqs: Req[] = [];
    // Retracting the whole batch frees room in it: pop the FIFO again rather than sit idle (but not when
    // nobody was retracted: the batch is empty because a victim's free is still deferred).
    while (this.popFifo(w)) {
      const before = lifecycle.preemptions;
      addDecodeItems(this.rooms, w, reqs);
      if (reqs.length > 0 || lifecycle.preemptions === before) break;
    }
    return reqs;
  }

  /** Pops `w`'s FIFO into its running batch while there is room. Returns whether the batch has anyone to run. */
  private popFifo(w: Worker): boolean {
    const { config, lifecycle, tracer, clock } = this.rooms;
    while (w.fifo.length > 0 && w.running.length < config.maxBatch) {
      const r = w.fifo[0];
      if (r.state !== 'handedOff' || r.server !== w) {
        w.fifo.shift(); // left by abort or migration
        continue;
      }
      if (r.awaitingKv || r.inFlight > 0) break; // its KV is still on the way (disaggregated)
      w.fifo.shift();
      if (r.tokenOwed) lifecycle.appendToken(r, r.pendingToken);
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'join', req: r.id, worker: w.id });
      r.state = 'decoding';
      if (r.generated >= r.maxTokens) lifecycle.finish(r);
      else {
        w.running.push(r);
        if (r.forksLeft > 0 && this.rooms.kv.sharing) this.rooms.forks.forkShared(r, w);
      }
    }
    return w.running.length > 0;
  }
}

/**
 * Positions of each decode item: one, and with speculative decoding the drafts its request was given. Only
 * for a batch addDecodeItems has just built (the drafts are those it proposed).
 */
export function decodeTokens(reqs: readonly Req[]): number[] {
  const toks = new Array<number>(reqs.length);
  for (let i = 0; i < reqs.length; i++) toks[i] = 1 + reqs[i].drafts.length;
  return toks;
}

/**
 * Appends to `reqs` the decode items of `w`'s running batch, each with room for one more position
 * (preempting if needed). With speculative decoding each item is first given its drafts (at most those its
 * output limit, and the step's token `budget`, leave room for after its next token), and room for them too.
 */
export function addDecodeItems(rooms: Rooms, w: Worker, reqs: Req[], budget = Number.POSITIVE_INFINITY): void {
  const { config, kv, lifecycle, preemption, speculation } = rooms;
  const T = config.blockSize;
  const gpu = w.gpu;
  const preemptionsBefore = lifecycle.preemptions;
  const running = w.running;
  let used = 0;
  for (let i = 0; i < running.length && reqs.length < config.maxBatch; i++) {
    const r = running[i];
    if (r.state !== 'decoding') continue; // retracted earlier in this loop
    // Under asynchronous scheduling a request in the step in flight will have one more position computed.
    const ahead = r.inFlight > 0 ? 1 : 0;
    // Speculative decoding: positions after the next one, for drafts (never past the output limit).
    const drafts = speculation === null ? 0 : speculation.propose(r, Math.min(r.maxTokens - r.generated - 1, budget - used - 1));
    const need = Math.ceil((r.computed + ahead + 1 + drafts) / T) - r.blocks[gpu].length;
    if (need > 0) {
      if (r.generated + ahead >= r.maxTokens) {
        // Asynchronous scheduling: a position past the output limit (its stop not processed yet) gets free
        // blocks if there are any, but nobody is preempted for it.
        if (!kv.hasFree(gpu, need)) continue;
        kv.allocate(w, r, gpu, need);
      } else if (!preemption.ensureBlocks(w, r, need)) continue;
    }
    // Shared KV: a block the step writes may be shared (a fork): copy it first.
    if (kv.sharing) {
      let copied = true;
      for (let b = Math.floor((r.computed + ahead) / T), last = Math.floor((r.computed + ahead + drafts) / T); b <= last; b++) {
        if (!kv.sharedAt(r, gpu, b)) continue;
        if (!preemption.makeRoom(w, r, 1)) {
          copied = false;
          break;
        }
        if (kv.sharedAt(r, gpu, b)) kv.copyOnWrite(w, r, gpu, b);
      }
      if (!copied) continue;
    }
    reqs.push(r);
    used += 1 + drafts;
  }
  if (lifecycle.preemptions !== preemptionsBefore) {
    // A victim may already have joined the batch: it leaves it.
    compact(reqs, (r) => r.state === 'decoding');
    compact(running, (r) => r.state === 'decoding' && r.server === w);
  }
}
