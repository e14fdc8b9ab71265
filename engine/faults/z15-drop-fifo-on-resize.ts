// Z15 — semi-PD §4.3 (the resize handoff). During a resize an old decode worker migrates its running
// requests to its successor but not its FIFO of handed-off requests, then stops: they are served by nobody.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'dropFifoOnResize',
  zoo: 'Z15',
  source: 'semi-PD paper §4.3 (the resize handoff)',
  seams: ['migrateFifo'],
  says: 'an old decode worker stops after migrating its running requests but not its FIFO',
  modes: ['semi-pd', 'nexus'],
  options: {},
  workload: [],
  resizing: true,
  check: { kind: 'spec', rules: ['ServedByLiveWorker'] },
  relaxes: [],
  patch: () => ({
    // - migrate the FIFO, in order, behind the successor's
    // + (nothing)
    migrateFifo: () => () => {},
  }),
});
