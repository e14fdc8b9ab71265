// Z3 — vLLM PR #45357. With asynchronous scheduling, a request whose stop condition shows in step N's output
// is finished after step N + 1 (which includes it) was launched; the finish frees its blocks at once instead
// of when step N + 1 ends, while that step still writes them.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'finishFreesInFlight',
  zoo: 'Z3',
  source: 'vLLM PR #45357',
  seams: ['freeOnFinish'],
  says: 'with asynchronous scheduling, the finish of a request whose next step is already in flight frees its blocks at once, under that step',
  modes: ['unified', 'semi-pd', 'nexus', 'disaggregated'],
  options: { asyncScheduling: true },
  workload: [],
  note: 'unified: any request (one output token is enough: 10 events); decode workers: outputs of ≥ 2 tokens',
  check: { kind: 'spec', rules: ['NoFreeWhileInFlight'] },
  // Each block is still freed once: the pool's books stay right, only the timing is wrong.
  relaxes: [],
  patch: ({ kv }) => ({
    // - if a step is in flight: free when it ends; else free now
    // + free now
    freeOnFinish: () => (r) => kv.freeRequest(r),
  }),
});
