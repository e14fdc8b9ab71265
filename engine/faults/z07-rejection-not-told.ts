// Z7 — vLLM PR #41269. When the decode side rejects a prefilled request before admitting it (no decode-side
// blocks within `decodeAdmitTimeout`), the prefill side is never told, so its blocks stay pinned (a leak).
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'rejectionNotTold',
  zoo: 'Z7',
  source: 'vLLM PR #41269',
  seams: ['tellPrefillOfRejection'],
  says: 'the decode side rejects a prefilled request it has no blocks for within decodeAdmitTimeout, and the prefill side, never told, keeps its blocks',
  modes: ['disaggregated'],
  options: { decodeAdmitTimeout: 0.05 },
  workload: ['decodeBacklog'],
  note: 'a leak that starves later requests is reported first as EveryRequestEnds under --quiescent; without it (or with room to spare) as EndedRequestsRelease; under a release deadline (conform --release-within, or a lockstep checker given one) as ReleaseWithin at the first event past it',
  check: { kind: 'spec', rules: ['EndedRequestsRelease', 'ReleaseWithin'] },
  relaxes: [],
  patch: () => ({
    // - decode rejects: tell the prefill side, which frees the request's blocks
    // + decode rejects: nobody is told
    tellPrefillOfRejection: () => () => {},
  }),
});
