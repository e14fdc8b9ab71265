// Z20 — vLLM PR #51756. With the hybrid KV cache manager disabled, one KV cache group holds Gemma 3's
// sliding-window and global layers, and the window recorded for the group is applied to the global layers
// too: positions they still read are treated as outside the window and their blocks freed. Here, whenever
// a request's windowed blocks fall out of the window, as many of its first full-attention blocks go with them.
import type { Req } from '../state.ts';
import { FULL_GROUP } from '../kv/kv-manager.ts';
import { defineFault } from './fault.ts';

export default defineFault({
  name: 'windowAppliedToGlobalLayers',
  zoo: 'Z20',
  source: 'vLLM PR #51756',
  seams: ['dropOutOfWindow'],
  says: 'when a request’s windowed blocks fall out of the sliding window, its full-attention group’s first blocks are freed with them, though global layers read every position',
  modes: ['semi-pd', 'nexus', 'disaggregated', 'unified'],
  options: { slidingWindow: 2 },
  workload: [],
  note: 'needs a request whose computed positions pass the window by a block: a prompt of at least window + block size − 1 positions',
  check: { kind: 'spec', rules: ['PartialFreeOnlyUnneeded'] },
  relaxes: [],
  patch: ({ kv }) => {
    // Per request and pool, the full-attention blocks the fault has freed so far.
    const dropped = new Map<Req, number[]>();
    return {
      // + the window applies to the full group too
      dropOutOfWindow: (next) => (r, gpu) => {
        next(r, gpu);
        const gone = dropped.get(r) ?? new Array<number>(r.blocks.length).fill(0);
        dropped.set(r, gone);
        const n = Math.min(kv.blocksBehindWindow(r) - gone[gpu], r.blocks[gpu].length);
        if (n <= 0) return;
        gone[gpu] += n;
        kv.dropFirst(r, gpu, FULL_GROUP, n);
      },
    };
  },
});
