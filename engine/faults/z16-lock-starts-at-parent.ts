// Z16 — mini-sglang PR #52. Locking a matched radix path starts at the matched node's parent, so the matched
// node itself (here: the last block of the hit) keeps no reference from the request that matched it. It
// stays evictable; under memory pressure it is evicted and its page reissued while that request still reads it.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'lockStartsAtParent',
  zoo: 'Z16',
  source: 'mini-sglang PR #52',
  seams: ['holdHits'],
  says: 'a cache hit locks every matched block but the last, which stays evictable and is evicted and reissued while the request reads it',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { prefixCaching: true, prefixCache: 'radix' },
  workload: ['sharedPrefix', 'kvPressure'],
  // With the cache's counters in the trace they disagree at the hit (the unlocked block still counts as
  // evictable); without them, the eviction of the block the request reads is refused.
  check: { kind: 'spec', rules: ['CacheSizeAccounted', 'NoEvictWhileLocked'] },
  // The request's table names a block it holds no reference on: the pool's checks would stop the run first.
  relaxes: ['blockOwners'],
  patch: ({ kv }) => ({
    // - take a reference on every matched block
    // + on every matched block but the last (its table still names it)
    holdHits: () => (r, gpu, hits) => {
      for (let i = 0; i < hits.length; i++) {
        if (i < hits.length - 1) kv.holdHit(r, gpu, hits[i]);
        else r.blocks[gpu].push(hits[i]);
      }
    },
  }),
});
