// Z4 — vLLM #49674, fixed by PR #49675. With asynchronous scheduling a victim still used by the step in flight frees
// nothing until that step ends; the scheduler, still short of blocks, preempts again in the same pass instead
// of waiting for that deferred free: a preemption cascade (more victims than needed, possibly all).
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'preemptionCascade',
  zoo: 'Z4',
  source: 'vLLM #49674 (fixed by PR #49675)',
  seams: ['waitsForDeferredVictim'],
  says: 'with asynchronous scheduling, a preemption whose free is deferred by the step in flight is followed at once by another, instead of waiting for that free',
  modes: ['semi-pd', 'nexus', 'disaggregated'],
  options: { asyncScheduling: true },
  workload: ['kvPressure', 'multiTokenOutputs'],
  note: 'only a decode worker schedules while its step runs (a unified worker schedules at the step end, with nothing in flight); the spec itself accepts the cascade',
  check: { kind: 'trace', rules: ['NoPreemptionCascade'] },
  relaxes: [],
  patch: () => ({
    // - while short: if the last victim's free is deferred, wait for it
    // + while short: preempt the next victim
    waitsForDeferredVictim: () => () => false,
  }),
});
