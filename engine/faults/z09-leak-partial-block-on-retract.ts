// Z9 — SGLang PRs #4977 and #9989. Retracting a request whose cached length is not block-aligned forgets its
// last, partial block: it leaves the table without being freed (a leak).
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'leakPartialBlockOnRetract',
  zoo: 'Z9',
  source: 'SGLang PRs #4977, #9989',
  seams: ['beforeRetractionFree'],
  says: 'retracting a request whose cached length is not block-aligned drops its last, partial block from the table without freeing it',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: {},
  workload: ['kvPressure', 'unalignedLengths'],
  // With shared KV the dropped block keeps the request among its holders: the engine's books show a holder
  // whose table lacks it (RefCountIsHolders) before the trace shows the leak.
  check: { kind: 'spec', rules: ['BlocksAccounted', 'LifecycleOrder', 'EndedRequestsRelease', 'QuiescentAllFree', 'RefCountIsHolders'] },
  // A leaked block stays owned by the request in the pool; no owner check fails on the way.
  relaxes: [],
  patch: ({ config }) => ({
    // + before the retraction's free: drop a partly filled last block from the table
    beforeRetractionFree: (next) => (r) => {
      for (let g = 0; g < r.blocks.length; g++) {
        const b = r.blocks[g];
        if (b.length > 0 && (r.length - 1) % config.blockSize !== 0) b.pop();
      }
      next(r);
    },
  }),
});
