// C2 — core-attention disaggregation (DistCA's re-planning after a rank leaves; no bug-zoo
// row). When an attention server is lost, the tasks it held are not dispatched again: the step they belong
// to ends without their results.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'lostTaskForgotten',
  zoo: 'C2',
  source: 'DistCA server loss and re-dispatch (arXiv 2510.18121; docs/cad.md)',
  seams: ['redispatchOnLoss'],
  says: 'the tasks a lost attention server held are not dispatched again, and their step ends without their results',
  modes: ['unified'],
  options: { attentionServers: { servers: 2, lossAtStep: 1 } },
  workload: [],
  note: 'the lost server must hold a task when it is lost: a first step with a prompt of ≥ 2 positions',
  check: { kind: 'spec', rules: ['StepWaitsForTasks'] },
  relaxes: [],
  patch: () => ({
    // - every task of the lost server not read back yet is dispatched again to a live server
    // + none is
    redispatchOnLoss: () => () => [],
  }),
});
