// Preemption by retraction, when a decode step is short of blocks (vLLM's recompute preemption, SGLang's
// retract): the victim is the request with the fewest generated tokens, ties the longest prompt, then the
// latest arrival.
import type { Rooms } from '../rooms.ts';
import type { Req, Worker } from '../state.ts';

export class Preemption {
  constructor(private readonly rooms: Rooms) {}

  /**
   * The victim on `w`. None in flight, except under asynchronous scheduling, where `w` schedules while its
   * step runs.
   */
  pickVictim(w: Worker): Req | null {
    const inFlightOk = this.rooms.config.asyncScheduling;
    let best: Req | null = null;
    for (const r of w.running) {
      if (r.state !== 'decoding' || r.server !== w || (r.inFlight > 0 && !inFlightOk)) continue;
      if (r.generated >= r.maxTokens) continue; // asynchronous scheduling: about to finish, its free is on the way
      if (best === null || before(r, best)) best = r;
    }
    // vLLM v1 preempts any running request: one mid-prefill too (not while a step computes its chunk).
    if (this.rooms.config.preemptPrefilling)
      for (const r of w.prefilling) {
        if (r.state !== 'prefilling' || r.server !== w || r.inFlight > 0) continue;
        if (best === null || before(r, best)) best = r;
      }
    return best;
  }

  /**
   * Makes room for `need` more blocks for `r` on `w`'s pool, preempting victims, and allocates them; false
   * if there is no room now (`r` itself retracted, no victim left, or a victim's free still deferred).
   */
  ensureBlocks(w: Worker, r: Req, need: number): boolean {
    if (!this.makeRoom(w, r, need)) return false;
    this.rooms.kv.allocate(w, r, w.gpu, need);
    return true;
  }

  /** Makes room for `need` free blocks in `w`'s pool for `r`, preempting victims; false as for ensureBlocks. */
  makeRoom(w: Worker, r: Req, need: number): boolean {
    const { kv, seams, lifecycle } = this.rooms;
    while (!kv.hasFree(w.gpu, need)) {
      // A victim whose blocks the step in flight still uses has freed nothing yet: wait for that free.
      if (w.pendingVictim !== null && seams.waitsForDeferredVictim(w)) return false;
      const victim = this.pickVictim(w);
      if (victim === null) return false;
      lifecycle.preempt(victim, w);
      if (victim === r) return false;
    }
    return true;
  }
}

/** Whether `a` is retracted before `b`: fewer generated tokens, then the longer prompt, then the later arrival. */
function before(a: Req, b: Req): boolean {
  return a.generated < b.generated || (a.generated === b.generated && (a.prompt > b.prompt || (a.prompt === b.prompt && a.idx > b.idx)));
}
