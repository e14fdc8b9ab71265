// The prefill worker's scheduler (semi-PD, Nexus, disaggregated): chunked prefill up to `prefillChunk`
// positions a step, the requests it is already prefilling first, then new ones from the waiting queue while
// the pool has room for their whole prompt.
import type { Worker, Req } from '../state.ts';
import { ownPrefilling, RoleScheduler } from './scheduler.ts';

export class PrefillScheduler extends RoleScheduler {
  start(w: Worker): void {
    if (w.retiring) return;
    const { config, waiting, kv, workers, steps } = this.rooms;
    const reqs: Req[] = [];
    const toks: number[] = [];
    let left = config.prefillChunk;
    ownPrefilling(w);
    for (const r of w.prefilling) {
      if (left === 0) break;
      const n = Math.min(r.length - r.computed, left);
      reqs.push(r);
      toks.push(n);
      left -= n;
    }
    // During a resize only the newest prefill worker admits.
    if (w === workers.admitter('prefill')) {
      for (let head = waiting.head(); head && left > 0 && kv.canAdmit(head, w.gpu); head = waiting.head()) {
        const n = Math.min(this.admit(head, w), left);
        reqs.push(head);
        toks.push(n);
        left -= n;
      }
    }
    if (reqs.length > 0) steps.begin(w, reqs, toks, new Array(reqs.length).fill(0));
  }
}
