// C3 — core-attention disaggregation (a task dispatched twice after a server timeout; no
// bug-zoo row). When an attention server is lost, every task it was ever given is dispatched again, those
// whose results were already read back included: they are computed twice.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'redispatchAfterReturn',
  zoo: 'C3',
  source: 'DistCA server loss and re-dispatch (arXiv 2510.18121; docs/cad.md)',
  seams: ['redispatchOnLoss'],
  says: 'a lost attention server’s tasks whose results were already read back are dispatched again with its unfinished ones',
  modes: ['unified'],
  options: { attentionServers: { servers: 2, lossAtStep: 2 } },
  workload: [],
  note: 'the lost server must have returned a task before it is lost: a loss at the second step (or later) of a run',
  check: { kind: 'spec', rules: ['TaskComputedOnce'] },
  relaxes: [],
  patch: () => ({
    // - the tasks of the lost server not read back yet
    // + every task it was given
    redispatchOnLoss: () => (held) => held.slice(),
  }),
});
