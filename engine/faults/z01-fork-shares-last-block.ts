// Z1 — vLLM #1556, fixed by PR #3347. A request with n > 1 parallel samples forks when its prompt is
// prefilled. The fork should copy the parent's blocks into blocks of its own; with the bug it shares the
// parent's last block: both tables hold it (the child's allocation names a block that has an owner), and
// both later free it.
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'forkSharesLastBlock',
  zoo: 'Z1',
  source: 'vLLM #1556 (fixed by PR #3347)',
  seams: ['forkCopy'],
  says: 'the fork of a request with n ≥ 2 shares the parent’s last block instead of copying it, so two tables hold it and both free it',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: {},
  workload: ['parallelSamples'],
  check: { kind: 'spec', rules: ['SingleOwner', 'FreeListUnique'] },
  // The shared block is in two tables and freed twice: the pool's owner checks would stop the run first.
  relaxes: ['blockOwners'],
  patch: ({ kv }) => ({
    // - allocate `count` fresh blocks for the child
    // + allocate count − 1, and append the parent's last block by reference
    forkCopy: () => (allocator, child, gpu, count, parentTable) => kv.allocate(allocator, child, gpu, count, parentTable[parentTable.length - 1]),
  }),
});
