// Z10 — SGLang PR #9817. A request pre-allocated at the decode side, transferred and queued there, then
// aborted before it joins a batch, is in none of the lists the abort path frees: it is never freed.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'abortForgetsQueuedAfterTransfer',
  zoo: 'Z10',
  source: 'SGLang PR #9817',
  seams: ['abortAfterTransfer'],
  says: 'a request pre-allocated, transferred and queued at the decode side, then aborted, is never freed',
  modes: ['disaggregated'],
  options: {},
  workload: ['aborts'],
  window: 'after the request’s transfer_end, before its join',
  note: 'a leak that starves later requests is reported first as EveryRequestEnds under --quiescent; without it (or with room to spare) as EndedRequestsRelease',
  // The campaign judges release deadlines of 0 s: the leak shows at the first event after the abort that passes it.
  check: { kind: 'spec', rules: ['EndedRequestsRelease', 'ReleaseWithin'] },
  relaxes: [],
  patch: () => ({
    // - abort of a request queued at the decode side after its transfer: free it
    // + (not in the running or waiting lists the abort path looks at: nothing)
    abortAfterTransfer: (next) => (r, wasHandedOff) => (wasHandedOff ? true : next(r, wasHandedOff)),
  }),
});
