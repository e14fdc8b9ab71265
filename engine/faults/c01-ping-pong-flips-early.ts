// C1 — core-attention disaggregation (DistCA's ping-pong execution; no bug-zoo row). An
// attention server's buffer takes its next task as soon as the task in it ended, before the worker read the
// result back: the dispatch overwrites an unread result (the ping-pong pair flips a nano-batch too early).
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'pingPongFlipsEarly',
  zoo: 'C1',
  source: 'DistCA ping-pong execution (arXiv 2510.18121; docs/cad.md)',
  seams: ['freesBufferOnEnd'],
  says: 'an attention server’s buffer takes its next task once the task in it ended, before the worker read its result back',
  modes: ['unified'],
  // One buffer per server, so that a server with two tasks of a step reuses it.
  options: { attentionServers: { servers: 2, buffers: 1 } },
  workload: [],
  note: 'any step with more tasks on a server than it has buffers: a prompt of ≥ 4 positions with one buffer per server',
  check: { kind: 'spec', rules: ['BufferNotReused'] },
  relaxes: [],
  patch: () => ({
    // - the buffer is free once the task's result is read back (task_consume)
    // + the buffer is free once the task ended (task_end)
    freesBufferOnEnd: () => () => true,
  }),
});
