// Z19 — mlx-vlm PR #1155 (issue #1144). Batched speculative decoding advances every request's cache offset
// by the whole draft block, whatever it accepted: a request that accepted fewer drafts keeps the rejected
// positions in its cache, and its next step computes (and attends) past them, at positions shifted by the
// drafts it rejected. Here the position where a request's next step starts advances by the whole verify,
// while its accepted tokens are counted right.
import type { Req } from '../state.ts';
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'verifyAdvancesWholeBlock',
  zoo: 'Z19',
  source: 'mlx-vlm PR #1155',
  seams: ['afterVerify', 'stepFrom'],
  says: 'after a verify, the position where the request’s next step starts advances past every draft, the rejected ones too, instead of past the accepted drafts and the correction',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { speculative: { drafter: 'oracle', k: 3, acceptance: 0 } },
  workload: ['multiTokenOutputs'],
  note: 'needs an output of at least 3 tokens: the first, a verify that rejects a draft, and one more step',
  check: { kind: 'spec', rules: ['StepsInOrder'] },
  relaxes: [],
  patch: () => {
    // Per request, the rejected draft positions its cache offset ran ahead by.
    const ahead = new Map<Req, number>();
    return {
      // + the cache offset moves past the whole draft block
      afterVerify: (next) => (r, drafts, accepted) => {
        next(r, drafts, accepted);
        ahead.set(r, (ahead.get(r) ?? 0) + drafts.length - accepted);
      },
      // - a step starts where the request's computed positions end
      // + it starts at the offset, past the rolled-back drafts
      stepFrom: (next) => (r) => next(r) + (ahead.get(r) ?? 0),
    };
  },
});
