// semi-PD and Nexus: a prefill worker and a decode worker share one GPU and one KV pool, with a split of
// its compute that a resize changes. A prefilled request is handed to the decode worker's FIFO; its first
// token is appended when decode pops it. The two modes differ by parameters only (modes/info.ts): share
// rule, epoch-0 split, default allocator, and how a resize starts workers.
import type { Split } from '../policy-api.ts';
import { PrefillScheduler } from '../sched/prefill.ts';
import type { Req, Worker } from '../state.ts';
import { ServingMode, type RoleSchedulers, type WorkerDecl } from './mode.ts';

export class CoLocatedMode extends ServingMode {
  topology(split: Split): WorkerDecl[] {
    return [
      { id: 'P0', role: 'prefill', share: split.prefill, gpu: 0 },
      { id: 'D0', role: 'decode', share: split.decode, gpu: 0 },
    ];
  }

  schedulers(): RoleSchedulers {
    return { prefill: new PrefillScheduler(this.rooms), decode: this.decodeScheduler() };
  }

  /** The handoff: to the decode worker that receives them (the oldest serving one, during a resize). */
  afterPrefill(r: Req, w: Worker): boolean {
    const { workers, tracer, clock } = this.rooms;
    const d = workers.decodeTarget();
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'handoff', req: r.id, from: w.id, to: d.id });
    r.state = 'handedOff';
    r.server = d;
    w.load--;
    d.load++;
    d.fifo.push(r);
    return false;
  }
}
