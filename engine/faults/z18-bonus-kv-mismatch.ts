// Z18 — vLLM PR #9730. With speculative decoding and more than one draft, the step after a verify that
// accepted every draft writes, at the bonus token's position, a token that is not the bonus token the request
// emitted (vLLM's batch expansion took the token from the wrong sequence), so the KV cache holds a token the
// output does not contain. Here the step after an all-accepted verify feeds the last draft at that position
// instead of the bonus.
import type { Req } from '../state.ts';
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'bonusKvMismatch',
  zoo: 'Z18',
  source: 'vLLM PR #9730',
  seams: ['afterVerify', 'firstInput'],
  says: 'after a verify that accepted every draft, the request’s next step writes the last draft, not the bonus token it emitted, at the bonus position',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { speculative: { drafter: 'oracle', k: 1, acceptance: 1 } },
  workload: ['multiTokenOutputs'],
  note: 'needs an output of at least 4 tokens: the first, a verify whose draft and bonus are accepted, and one more step',
  check: { kind: 'spec', rules: ['KvMatchesOutput'] },
  relaxes: [],
  patch: () => {
    // The last draft of each request whose last verify accepted them all, until its next step reads it.
    const stale = new Map<Req, number>();
    return {
      // + a verify that accepted every draft leaves its last draft where the bonus should be fed
      afterVerify: (next) => (r, drafts, accepted) => {
        next(r, drafts, accepted);
        if (accepted === drafts.length) stale.set(r, drafts[drafts.length - 1]);
        else stale.delete(r);
      },
      // - the step writes the request's last token (the bonus) at its first position
      // + it writes the stale draft there
      firstInput: (next) => (r, last) => {
        const token = stale.get(r);
        if (token === undefined) return next(r, last);
        stale.delete(r);
        return token;
      },
    };
  },
});
