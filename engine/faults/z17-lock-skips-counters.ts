// Z17 — mllm PR #656. The radix cache keeps two counters, evictable and protected tokens, which the scheduler
// admits work against; a path that changes a node's lock state does not move its tokens between them (in
// mllm: splitting a node). Here the slip is on the lock a hit takes: a revived block stays counted as
// evictable, so evictable + protected no longer equals the cache's real size.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'lockSkipsCounters',
  zoo: 'Z17',
  source: 'mllm PR #656',
  seams: ['holdHits'],
  says: 'a cache hit that revives a parked block does not move its tokens from the evictable to the protected counter',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { prefixCaching: true, prefixCache: 'radix' },
  workload: ['sharedPrefix'],
  check: { kind: 'spec', rules: ['CacheSizeAccounted'] },
  relaxes: [],
  patch: ({ kv }) => ({
    // - revive the block and move its tokens from evictable to protected
    // + revive it, counters unchanged
    holdHits: () => (r, gpu, hits) => {
      for (const b of hits) kv.holdHit(r, gpu, b, false);
    },
  }),
});
