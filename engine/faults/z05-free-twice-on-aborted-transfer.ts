// Z5 — vLLM PR #33377. An abort during a KV transfer reports the request finished: its blocks are freed at
// once (the table kept), and again when the transfer's completion runs the deferred free.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'freeTwiceOnAbortedTransfer',
  zoo: 'Z5',
  source: 'vLLM PR #33377',
  seams: ['abortDuringTransfer'],
  says: 'an abort during a KV transfer frees the request’s blocks at once and again when the transfer ends',
  modes: ['disaggregated'],
  options: {},
  workload: ['aborts'],
  window: 'between transfer_begin and transfer_end of the request',
  check: { kind: 'spec', rules: ['NoFreeWhileInFlight', 'FreeListUnique'] },
  // Every block is released twice: the pool's owner check would stop the run first.
  relaxes: ['blockOwners'],
  patch: ({ kv, tracer, clock }) => ({
    // - abort during a transfer: free when the transfer ends
    // + free every pool now, keep the tables, and free again when the transfer ends
    abortDuringTransfer: () => (r) => {
      for (let g = 0; g < r.blocks.length; g++) {
        const blocks = r.blocks[g];
        if (blocks.length === 0) continue;
        if (tracer.on) tracer.emit({ t: clock.now, ev: 'free', req: r.id, blocks: blocks.slice() });
        kv.pools[g].release(r.idx, blocks);
      }
      r.settleFree = true;
      return true;
    },
  }),
});
