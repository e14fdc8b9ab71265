// Z13 — semi-PD §4.4 (the unified memory manager's lock). Allocation does not take the pool lock. Every worker
// that allocates in one scheduling pass reads utilisation at the start of the pass (the two processes'
// schedulers run at the same time), so their query / take / update steps interleave and both take the same
// free blocks.
import type { UtilisationReading } from '../kv/block-pool.ts';
import type { Worker } from '../state.ts';
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'locklessAllocator',
  zoo: 'Z13',
  source: 'semi-PD paper §4.4 (the allocator’s lock)',
  seams: ['beginPass', 'endPass', 'openReading'],
  says: 'the two workers allocate without the pool lock, from utilisation read at the start of the scheduling pass, and take the same free blocks',
  modes: ['semi-pd', 'nexus'],
  options: { allocator: 'lock', allocEvents: 'steps' },
  workload: [],
  check: { kind: 'spec', rules: ['SingleOwner'] },
  // Two workers take the same block: the pool's owner check would stop the run first.
  relaxes: ['blockOwners'],
  settings: { allocEvents: 'steps', poolLocking: false },
  patch: ({ kv, tracer, clock, workers }) => {
    let readings: Map<Worker, UtilisationReading> | null = null;
    return {
      // + at the start of a pass: every idle worker that allocates reads utilisation, unlocked
      beginPass: (next) => () => {
        next();
        readings = new Map();
        for (const w of workers.live) {
          if (w.state !== 'idle' || !w.allocatesOwn) continue;
          readings.set(w, kv.pools[w.gpu].query(w.id));
          if (tracer.on) tracer.emit({ t: clock.now, ev: 'alloc_query', worker: w.id });
        }
      },
      // - each allocation: query, take, commit
      // + each allocation: take from the reading of the pass's start
      openReading: (next) => (w) => readings?.get(w) ?? next(w),
      // + at the end of the pass: every reading is committed
      endPass: (next) => () => {
        for (const [w, reading] of readings!) {
          kv.pools[w.gpu].commit(reading);
          if (tracer.on) tracer.emit({ t: clock.now, ev: 'alloc_commit', worker: w.id });
        }
        readings = null;
        next();
      },
    };
  },
});
