// Asynchronous scheduling (EngineOptions.asyncScheduling; vLLM's sched/async_scheduler.py, SGLang's overlap
// scheduler) as two small subclasses. At the end of step N its tokens are appended, step N + 1 is launched,
// and only then are step N's stop conditions processed: a request that reached its limit is in step N + 1,
// and its free is deferred until that step ends. A decode worker also schedules step N + 1 (its batch and
// blocks, preempting if short) while step N runs, so its victims may still be in step N.
import type { Req, Worker } from '../state.ts';
import { compact } from '../state.ts';
import { DecodeScheduler } from './decode.ts';
import { UnifiedScheduler } from './unified.ts';

export class AsyncDecodeScheduler extends DecodeScheduler {
  override readonly overlaps = true;

  /** While step N runs, schedule step N + 1 (requests in step N will have one more position by then). */
  protected override afterBegin(w: Worker): void {
    const next = this.batch(w);
    w.nextBatch = next.length > 0 ? next : null;
  }

  /** Launch the batch scheduled while step N ran, then process step N's stop conditions, then schedule step N + 2. */
  protected override afterStepEnd(w: Worker, due: Req[] | null): void {
    const next = w.nextBatch;
    w.nextBatch = null;
    let launched = false;
    if (next !== null && !w.retiring) {
      compact(next, (r) => r.state === 'decoding' && r.server === w);
      if (next.length > 0) {
        this.rooms.steps.begin(w, next, new Array(next.length).fill(1), new Array(next.length).fill(1));
        launched = true;
      }
    }
    this.finishDue(due);
    if (launched) this.afterBegin(w);
  }
}

export class AsyncUnifiedScheduler extends UnifiedScheduler {
  override readonly overlaps = true;

  /** Launch step N + 1 (built now), then process step N's stop conditions. */
  protected override afterStepEnd(w: Worker, due: Req[] | null): void {
    this.start(w);
    this.finishDue(due);
  }
}
