// The unified baseline (vLLM, SGLang, chunked prefill): one worker on one GPU runs both phases; a request
// whose prefill completes returns its first token and joins the same worker's running batch.
import type { Split } from '../policy-api.ts';
import { AsyncUnifiedScheduler } from '../sched/async.ts';
import { UnifiedScheduler } from '../sched/unified.ts';
import type { Req, Worker } from '../state.ts';
import { ServingMode, type RoleSchedulers, type WorkerDecl } from './mode.ts';

export class UnifiedMode extends ServingMode {
  topology(_split: Split): WorkerDecl[] {
    return [{ id: 'U0', role: 'unified', share: 100, gpu: 0 }];
  }

  schedulers(): RoleSchedulers {
    return { unified: this.rooms.config.asyncScheduling ? new AsyncUnifiedScheduler(this.rooms) : new UnifiedScheduler(this.rooms) };
  }

  afterPrefill(r: Req, w: Worker, overlap: boolean): boolean {
    const { lifecycle, tracer, clock } = this.rooms;
    lifecycle.appendToken(r, r.pendingToken);
    if (r.generated >= r.maxTokens && !overlap) {
      lifecycle.finish(r);
      return false;
    }
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'join', req: r.id, worker: w.id });
    r.state = 'decoding';
    w.running.push(r);
    if (r.forksLeft > 0 && this.rooms.kv.sharing && r.generated < r.maxTokens) this.rooms.forks.forkShared(r, w);
    return r.generated >= r.maxTokens;
  }
}
