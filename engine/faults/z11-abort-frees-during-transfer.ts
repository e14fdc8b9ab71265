// Z11 — SGLang #24527. An abort during a transfer frees the decode-side blocks at once, while the
// transfer still writes them; the prefill side's are freed when the transfer ends.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'abortFreesDuringTransfer',
  zoo: 'Z11',
  source: 'SGLang #24527',
  seams: ['abortDuringTransfer'],
  says: 'an abort during a transfer frees the decode-side blocks at once while the transfer still writes them',
  modes: ['disaggregated'],
  options: {},
  workload: ['aborts'],
  window: 'between transfer_begin and transfer_end of the request',
  check: { kind: 'spec', rules: ['NoFreeWhileInFlight'] },
  // Each block is still freed once: only the timing is wrong.
  relaxes: [],
  patch: ({ kv }) => ({
    // - abort during a transfer: free every pool when the transfer ends
    // + free the decode side's pool now, the rest when the transfer ends
    abortDuringTransfer: () => (r) => {
      kv.freePool(r, r.blocks.length - 1);
      r.settleFree = true;
      return true;
    },
  }),
});
