// Z12 — TensorRT-LLM PR #14937. The first finished request's blocks are released twice (the release path
// runs twice); the pool's free queue takes every block again, so it really holds them twice and later
// allocations hand the same block to two owners.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'duplicateRelease',
  zoo: 'Z12',
  source: 'TensorRT-LLM PR #14937',
  seams: ['afterRelease'],
  says: 'the first finished request’s blocks are released twice; the free queue holds them twice and later hands them to two owners',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: {},
  workload: [],
  check: { kind: 'spec', rules: ['FreeListUnique', 'SingleOwner'] },
  // The free list really takes each block twice: the pool's owner checks would stop the run first.
  relaxes: ['blockOwners'],
  patch: ({ kv, tracer, clock }) => {
    let released = false; // one duplicate per run is the bug
    return {
      // + after the release of a finished request's blocks: the release path runs again
      afterRelease: (next) => (r, g, blocks) => {
        next(r, g, blocks);
        if (released || r.state !== 'finished') return;
        released = true;
        if (tracer.on) tracer.emit({ t: clock.now, ev: 'free', req: r.id, blocks });
        kv.pools[g].release(r.idx, blocks);
      },
    };
  },
});
