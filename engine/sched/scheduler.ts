// The scheduler of one worker role (vLLM's sched/scheduler.py, one per role): what an idle worker runs next,
// and what a step's end does to the requests in it. Subclasses: prefill.ts, decode.ts, unified.ts, and the
// asynchronous variants in async.ts, which override two hooks. The scheduling pass, at the end of every
// simulation event, gives each idle worker its next step.
import type { Rooms } from '../rooms.ts';
import { compact, type Req, type Step, type Worker } from '../state.ts';
import { acceptedPrefix } from './speculation.ts';

export abstract class RoleScheduler {
  /** Asynchronous scheduling: step N's stop conditions are processed after step N + 1 is launched. */
  readonly overlaps: boolean = false;

  constructor(protected readonly rooms: Rooms) {}

  /** `w` is idle in a scheduling pass: start its next step, if it has work. */
  abstract start(w: Worker): void;

  /** Hook: a step of `w` ended and its results were applied; `due` are requests whose stop condition is left to this scheduler. */
  protected afterStepEnd(_w: Worker, _due: Req[] | null): void {}

  /** Asynchronous scheduling: step N's requests that reached their limit finish (those still decoding: an abort may have come first). */
  protected finishDue(due: Req[] | null): void {
    if (due === null) return;
    for (const r of due) if (r.state === 'decoding') this.rooms.lifecycle.finish(r);
  }

  /**
   * Admits the waiting head `r` to `w`: its blocks (all of its prompt), then the schedule. With a prefix
   * cache the schedule comes first, then the hit on its cached first blocks, then the rest of its blocks.
   * Returns the positions its prefill still has to compute.
   */
  protected admit(r: Req, w: Worker): number {
    const { waiting, config, kv, workers } = this.rooms;
    waiting.admitHead(r);
    const count = Math.ceil(r.length / config.blockSize);
    if (kv.sharing) {
      this.rooms.lifecycle.schedule(r, w);
      kv.admitShared(workers.allocatorFor(w), r, w.gpu, count);
      return r.length - r.computed;
    }
    kv.allocate(workers.allocatorFor(w), r, w.gpu, count);
    kv.takeSlot(workers.allocatorFor(w), r, w.gpu);
    this.rooms.lifecycle.schedule(r, w);
    return r.length;
  }

  /** A step of this role ended: apply its tokens and positions, hand on completed prefills, then the hooks. */
  onStepEnd(step: Step): void {
    // Read once: every role's scheduler runs this method, so loads from `this` are polymorphic.
    const rooms = this.rooms;
    const overlaps = this.overlaps;
    const { tracer, clock, lifecycle } = rooms;
    const w = step.worker;
    const result = step.result!;
    const tokens = result.tokens;
    const { reqs, tokens: counts, decode, drafts } = step;
    w.step = null;
    w.state = 'idle';
    // Speculative decoding: each verify accepts the drafts greedy decoding would have chosen, a prefix.
    let accepted: Record<string, number> | null = null;
    if (drafts !== null) {
      accepted = {};
      for (let i = 0; i < reqs.length; i++) if (drafts[i].length > 0) accepted[reqs[i].id] = acceptedPrefix(drafts[i], result.nextAll![i]!);
    }
    // Core-attention disaggregation: the step's tasks are computed and read back before it ends.
    rooms.steps.endTasks(step);
    if (tracer.on) tracer.emit(accepted === null ? { t: clock.now, ev: 'step_end', worker: w.id, step: step.id } : { t: clock.now, ev: 'step_end', worker: w.id, step: step.id, accepted });
    let due: Req[] | null = null;
    let prefillDone = false;
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i];
      r.inFlight--;
      if (r.state !== 'decoding' && r.state !== 'prefilling') {
        // Aborted, finished (asynchronous scheduling) or retracted while the step ran: its result is
        // discarded; the deferred free happens now.
        lifecycle.settle(r);
        continue;
      }
      if (decode[i] === 1) {
        const k = drafts === null ? 0 : drafts[i].length;
        if (k === 0) {
          r.computed++;
          lifecycle.appendToken(r, tokens[i]);
        } else {
          // A verify: its accepted drafts, then the argmax after the last of them (the correction, or the
          // bonus when all were accepted); the positions after them are rolled back.
          const a = accepted![r.id];
          const next = result.nextAll![i]!;
          r.computed += 1 + a;
          rooms.speculation!.verified(r, drafts![i], a);
          for (let j = 0; j <= a; j++) lifecycle.appendToken(r, next[j]);
        }
        if (r.generated >= r.maxTokens) {
          if (overlaps) (due ??= []).push(r);
          else lifecycle.finish(r);
        } else if (k > 0 && rooms.config.speculative!.freeRejected) rooms.kv.freeTail(r, w.gpu);
      } else if (prefilled(rooms, r, w, counts[i], tokens[i])) {
        prefillDone = true;
        if (rooms.mode.afterPrefill(r, w, overlaps)) (due ??= []).push(r);
      }
      // Layer groups: the windowed blocks no later step reads go back now (none while a step or transfer uses them).
      if (rooms.kv.window > 0 && r.inFlight === 0 && !r.ended) rooms.seams.dropOutOfWindow(r, w.gpu);
    }
    this.afterStepEnd(w, due);
    if (prefillDone) ownPrefilling(w);
    if (w.retiring) rooms.resize.retire(w);
  }
}

/** `n` more prompt positions of `r` computed on `w`; true when its whole sequence is (the token is owed, forks made). */
function prefilled(rooms: Rooms, r: Req, w: Worker, n: number, token: number): boolean {
  r.computed += n;
  if (r.prefixBlocks > r.prefixReady && rooms.kv.sharing) rooms.kv.insertComputed(r);
  if (r.computed !== r.length) return false;
  r.state = 'prefilled';
  r.tokenOwed = true;
  r.pendingToken = token;
  // With shared KV the samples are forked once the parent decodes (Forks.forkShared, at its join).
  if (r.forksLeft > 0 && r.generated === 0 && !rooms.kv.sharing) rooms.forks.fork(r, w);
  return true;
}

/** Requests in `w`'s prefill that are still its own, in order. */
export function ownPrefilling(w: Worker): void {
  compact(w.prefilling, (r) => r.state === 'prefilling' && r.server === w);
}

/**
 * The scheduling pass: every idle worker gets its next batch. A later worker of the pass can free blocks (a
 * decode worker finishing requests as it pops its FIFO) that an earlier idle worker was waiting for: go round
 * again until a round frees nothing, or an idle prefill worker would wait for blocks that are already free,
 * with no event left to wake it.
 */
export function schedulingPass(rooms: Rooms): void {
  const { seams, kv, workers } = rooms;
  seams.beginPass();
  for (let rounds = 0; rounds < 8; rounds++) {
    const freeBefore = kv.totalFree();
    for (let i = 0; i < workers.live.length; i++) {
      const w = workers.live[i];
      if (w.state === 'idle') w.scheduler.start(w);
    }
    if (kv.totalFree() <= freeBefore) break;
  }
  seams.endPass();
}
