// Parallel samples (a request with n > 1): the fork, when the parent's prompt is first prefilled.
import type { Rooms } from '../rooms.ts';
import type { Req, Worker } from '../state.ts';

export class Forks {
  constructor(private readonly rooms: Rooms) {}

  /**
   * `parent`'s prompt has just been prefilled on `w` for the first time: fork its n − 1 parallel samples.
   * The spec has one owner per block, so a fork copies: each child arrives, is allocated blocks of its own
   * for the prompt, and is scheduled on `w`, whose next prefill step writes the copy (the child has the
   * parent's seed, so it holds the same prompt and the same K/V; the cost model prices the copy as a
   * prefill). A child the pool has no room for now waits at the head of the queue and is recomputed.
   */
  fork(parent: Req, w: Worker): void {
    const { lifecycle, tracer, clock, kv, config } = this.rooms;
    const n = parent.forksLeft + 1;
    parent.children = [];
    for (let k = 1; k < n; k++) {
      const c = lifecycle.create(`${parent.id}#${k}`, parent.seed, parent.prompt, parent.maxTokens, parent.arrival, Number.POSITIVE_INFINITY);
      if (parent.prefixId !== null) {
        c.prefixId = parent.prefixId;
        c.prefixBlocks = parent.prefixBlocks;
      }
      parent.children.push(c);
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'arrive', req: c.id, prompt: c.prompt, maxTokens: c.maxTokens, note: `fork ${k} of ${parent.id} (n = ${n})` });
      const table = parent.blocks[w.gpu];
      const count = Math.ceil(c.length / config.blockSize);
      if (kv.pools[w.gpu].free < count || table.length !== count) {
        c.waitClass = 0;
        this.rooms.waiting.enqueue(c);
        continue;
      }
      this.rooms.seams.forkCopy(this.rooms.workers.allocatorFor(w), c, w.gpu, count, table);
      lifecycle.schedule(c, w);
    }
    parent.forksLeft = 0;
  }
}
