// Z2 — vLLM PR #4764. With prefix caching, a cached block evicted to be reissued to another request is not
// removed from the prefix map, so the prefix's next request is served it as a cache hit while its new owner
// holds it, with other contents.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'prefixCacheKeepsEvicted',
  zoo: 'Z2',
  source: 'vLLM PR #4764',
  seams: ['evictParked'],
  says: 'an evicted prefix-cache block stays in the prefix map, so it is served as a cache hit after it was reissued to another request',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { prefixCaching: true },
  workload: ['sharedPrefix', 'kvPressure'],
  check: { kind: 'spec', rules: ['CacheCoherent'] },
  // The stale hit takes a block another request holds: the pool's checks would stop the run first.
  relaxes: ['blockOwners'],
  patch: ({ kv }) => ({
    // - the block loses its key, and the key leaves the map
    // + the block loses its key; the map keeps key → block
    evictParked: () => (b) => kv.prefix.evict(b, false),
  }),
});
