// Z8 — SGLang PR #12224. With overlap scheduling, a request that finished while the overlapped step ran has
// the slot of that step (its last block) freed ad hoc when the step ends, and then the finish path frees its
// whole table, that block included: freed twice.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'overlapDoubleFree',
  zoo: 'Z8',
  source: 'SGLang PR #12224',
  seams: ['beforeDeferredFree'],
  says: 'with overlap scheduling, a request that finished while the overlapped step ran has that step’s slot (its last block) freed ad hoc, then its whole table by the finish path',
  modes: ['unified', 'semi-pd', 'nexus', 'disaggregated'],
  options: { asyncScheduling: true },
  workload: [],
  note: 'unified: any request (one output token is enough: 12 events); decode workers: outputs of ≥ 2 tokens',
  check: { kind: 'spec', rules: ['FreeListUnique'] },
  // The slot is released twice: the pool's owner check would stop the run first.
  relaxes: ['blockOwners'],
  patch: ({ kv, tracer, clock }) => ({
    // + the overlapped step of a finished request ends: free its slot (the last block) ad hoc, left in the table
    beforeDeferredFree: (next) => (r) => {
      next(r);
      if (r.state !== 'finished') return;
      for (let g = r.blocks.length - 1; g >= 0; g--) {
        const table = r.blocks[g];
        if (table.length === 0) continue;
        const slot = [table[table.length - 1]];
        if (tracer.on) tracer.emit({ t: clock.now, ev: 'free', req: r.id, blocks: slot });
        kv.pools[g].release(r.idx, slot);
        break;
      }
    },
  }),
});
