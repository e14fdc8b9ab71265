// The workers: every worker ever started (for observe()) and the live ones, in creation order — the order
// of the scheduling pass. Finds who admits new work, who receives handoffs, and who shares a GPU.
import type { Role } from '../executors/step-executor.ts';
import { EngineBugError } from '../kv/block-pool.ts';
import type { Worker } from '../state.ts';

export class WorkerSet {
  readonly all: Worker[] = [];
  live: Worker[] = [];

  add(w: Worker): void {
    this.all.push(w);
    this.live.push(w);
  }

  /** A stopped worker leaves the live list. */
  remove(w: Worker): void {
    this.live = this.live.filter((x) => x !== w);
  }

  /** The prefill (or unified) worker that admits new work: the newest serving one that is not retiring. */
  admitter(role: Role): Worker | null {
    for (let i = this.live.length - 1; i >= 0; i--) {
      const w = this.live[i];
      if (w.role === role && !w.retiring && w.serving) return w;
    }
    return null;
  }

  /**
   * The decode worker that receives handoffs (and allocates under the decode-owned allocator): the oldest
   * one still serving, so that during a resize the old decode worker's FIFO keeps its order when it migrates.
   */
  decodeTarget(): Worker {
    for (const w of this.live) if (w.role === 'decode' && w.serving) return w;
    throw new EngineBugError('no decode worker is serving');
  }

  /** The worker that allocates blocks for work on `w`: `w` itself, or (decode-owned) the decode target. */
  allocatorFor(w: Worker): Worker {
    return w.allocatesOwn ? w : this.decodeTarget();
  }

  /** Whether a worker of the other phase has a step in flight on `w`'s GPU, and the shares busy there with `w`'s. */
  busyOnGpu(w: Worker): { coRunning: boolean; busyShares: number } {
    let coRunning = false;
    let busyShares = w.share;
    for (const o of this.live) {
      if (o === w || o.gpu !== w.gpu || o.step === null) continue;
      busyShares += o.share;
      if (o.role !== w.role) coRunning = true;
    }
    return { coRunning, busyShares };
  }
}
