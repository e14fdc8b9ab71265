// Z2 — vLLM PR #4764. With prefix caching, a cached block taken from the free list for another request
// (evicted and reissued) is not removed from the prefix map, so the prefix's next request is served it as a
// cache hit while its new owner holds it.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'prefixCacheKeepsEvicted',
  zoo: 'Z2',
  source: 'vLLM PR #4764',
  seams: ['evictReissued'],
  says: 'a cached prefix block reissued from the free list stays in the prefix map, so it is served as a cache hit while another request owns it',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { prefixCaching: true },
  workload: ['sharedPrefix'],
  check: { kind: 'spec', rules: ['SingleOwner'] },
  // The hit takes a block another request owns: the pool's owner check would stop the run first.
  relaxes: ['blockOwners'],
  patch: () => ({
    // - for each reissued block: evict it from the prefix map
    // + (nothing)
    evictReissued: () => () => {},
  }),
});
