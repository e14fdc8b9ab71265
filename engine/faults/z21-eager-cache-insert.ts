// Z21 — vLLM PR #43569. allocate_slots registers a request's blocks in the prefix cache's hash map when they
// are scheduled to become full, before the worker has written their K/V, and nothing rolls the registration
// back if the request is preempted or aborted first: a later request can hit a block that was never written.
// Here the engine registers the blocks of an admitted request's prefix at admission, before its step begins.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'eagerCacheInsert',
  zoo: 'Z21',
  source: 'vLLM PR #43569',
  seams: ['insertOnAdmit'],
  says: 'a request’s prefix blocks enter the prefix cache at admission, before any step has written their K/V',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { prefixCaching: true },
  workload: ['sharedPrefix'],
  check: { kind: 'spec', rules: ['CacheCoherent'] },
  relaxes: [],
  patch: ({ kv }) => ({
    // - (nothing: blocks are cached once their positions are computed)
    // + cache every prefix block the request now has
    insertOnAdmit: () => (r) => kv.insertComputed(r, r.prefixBlocks),
  }),
});
