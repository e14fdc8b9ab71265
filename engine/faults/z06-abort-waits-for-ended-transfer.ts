// Z6 — vLLM PR #32255. An abort after the request's transfer already ended still waits for the transfer's
// completion signal before freeing; the signal came before the abort, so nothing ever frees the blocks.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'abortWaitsForEndedTransfer',
  zoo: 'Z6',
  source: 'vLLM PR #32255',
  seams: ['abortAfterTransfer'],
  says: 'an abort after the request’s transfer ended waits for the transfer’s completion signal, which already came: its blocks are never freed',
  modes: ['disaggregated'],
  options: {},
  workload: ['aborts'],
  window: 'after the request’s transfer_end, before it finishes',
  note: 'a leak that starves later requests is reported first as EveryRequestEnds under --quiescent; without it (or with room to spare) as EndedRequestsRelease',
  check: { kind: 'spec', rules: ['EndedRequestsRelease'] },
  relaxes: [],
  patch: () => ({
    // - abort after the transfer: free now
    // + wait for the transfer's completion (already delivered): never free
    abortAfterTransfer: () => () => true,
  }),
});
