// Parallel samples (a request with n > 1). Without shared KV (trace v1) the fork copies, when the parent's
// prompt is first prefilled; with it (trace v2) the children share every block of the parent from its join
// on, as vLLM v0's BlockSpaceManager.fork does, and a write to a shared block copies it first.
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
      c.prefixSeed = parent.prefixSeed;
      c.prefixLength = parent.prefixLength;
      if (parent.prefixId !== null) {
        c.prefixId = parent.prefixId;
        c.prefixBlocks = parent.prefixBlocks;
      }
      parent.children.push(c);
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'arrive', req: c.id, prompt: c.prompt, maxTokens: c.maxTokens, note: `fork ${k} of ${parent.id} (n = ${n})` });
      const table = parent.blocks[w.gpu];
      const count = Math.ceil(c.length / config.blockSize);
      if (!kv.hasFree(w.gpu, count) || table.length !== count) {
        c.waitClass = 0;
        this.rooms.waiting.enqueue(c);
        continue;
      }
      this.rooms.seams.forkCopy(this.rooms.workers.allocatorFor(w), c, w.gpu, count, table);
      lifecycle.schedule(c, w);
    }
    parent.forksLeft = 0;
  }

  /**
   * Shared KV: `parent` has just joined `w`'s running batch: fork its n − 1 parallel samples. Each child is a
   * new request in the parent's state (its tokens so far, its computed positions), decoding on `w` and
   * holding every block of the parent (fork). The child has the parent's seed, so its greedy output is the
   * parent's. (A parent whose first token is its last finishes without joining: it has nothing left to sample.)
   */
  forkShared(parent: Req, w: Worker): void {
    const { lifecycle, tracer, clock, kv } = this.rooms;
    const n = parent.forksLeft + 1;
    parent.children = [];
    for (let k = 1; k < n; k++) {
      const c = lifecycle.create(`${parent.id}#${k}`, parent.seed, parent.prompt, parent.maxTokens, parent.arrival, Number.POSITIVE_INFINITY);
      c.prefixId = parent.prefixId;
      c.prefixBlocks = parent.prefixBlocks;
      c.prefixSeed = parent.prefixSeed;
      c.prefixLength = parent.prefixLength;
      c.prefixReady = parent.prefixBlocks; // the parent has cached (or found cached) what the child could
      c.state = 'decoding';
      c.server = w;
      c.generated = parent.generated;
      c.computed = parent.computed;
      c.firstTokenAt = parent.firstTokenAt;
      c.lastTokenAt = parent.lastTokenAt;
      if (c.outputs && parent.outputs) c.outputs.push(...parent.outputs);
      w.load++;
      parent.children.push(c);
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'fork', parent: parent.id, child: c.id, note: `sample ${k} of ${n}` });
      kv.forkBlocks(parent, c);
      kv.prefix.forks++;
      w.running.push(c);
    }
    parent.forksLeft = 0;
  }
}
