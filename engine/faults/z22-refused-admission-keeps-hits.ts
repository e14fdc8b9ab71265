// Z22 — oMLX PR #1450 (the same leak: Atlas PR #373). Matching a prompt against the prefix cache takes
// references on the matched blocks before the scheduler checks for room; when the admission is refused for
// want of room, the references are not given back. The blocks leave the evictable set for good: nobody holds
// them and nothing can evict them, so the cache's counters no longer match its blocks.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'refusedAdmissionKeepsHits',
  zoo: 'Z22',
  source: 'oMLX PR #1450; Atlas PR #373',
  seams: ['admissionRefused'],
  says: 'an admission refused for want of room keeps the references its prefix match took on parked blocks, which leak',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { prefixCaching: true },
  workload: ['sharedPrefix', 'kvPressure'],
  check: { kind: 'spec', rules: ['CacheSizeAccounted'] },
  // A leaked block has a reference and no holder: the engine's own books would stop the run first.
  relaxes: ['blockOwners'],
  patch: ({ kv }) => ({
    // - (nothing: the match only looked)
    // + the match's references on parked blocks stay taken
    admissionRefused: () => (r, gpu) => kv.leakMatch(r, gpu),
  }),
});
