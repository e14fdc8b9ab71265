// Output invariance with the cost-model executor: every request's tokens are the same whatever the mode,
// split, batch, preemption or resize, and equal to the pseudo-tokens of its seed and positions.
import { describe, expect, it } from 'vitest';
import { Engine, type Mode } from '../engine/engine.ts';
import { pseudoToken } from '../engine/executors/cost-model.ts';
import { cyclingPolicy, MODES, PROFILE, smallWorkload } from './engine-fixtures.ts';

describe('output invariance', () => {
  it('the same tokens in every mode, with preemption and resizes', () => {
    const workload = smallWorkload(31, 40, { rate: 60, prompt: 'uniform:1:60', output: 'uniform:1:50' });
    const outputs = new Map<string, Map<string, number[]>>();
    let preemptions = 0;
    for (const mode of MODES as Mode[]) {
      for (const blocks of [40, 400]) {
        const engine = new Engine({
          mode,
          profile: PROFILE,
          workload,
          blocks,
          blockSize: 4,
          seed: 99,
          recordOutputs: true,
          policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.02) : null,
        });
        const result = engine.runToCompletion();
        preemptions += result.metrics.preemptions;
        expect(result.metrics.requests.finished).toBe(workload.length);
        outputs.set(`${mode}/${blocks}`, engine.outputs());
      }
    }
    expect(preemptions).toBeGreaterThan(0);
    const [reference, ...others] = [...outputs.values()];
    for (const other of others) expect(other).toEqual(reference);
    for (const r of workload) expect(reference.get(r.id)).toHaveLength(r.output);
    // They are the pseudo-tokens of the request's seed at positions prompt, prompt + 1, ...
    const seeded = new Engine({ mode: 'unified', profile: PROFILE, workload: [{ id: 'x', arrival: 0, prompt: 5, output: 4, seed: 1234 }], blocks: 8, blockSize: 4, recordOutputs: true });
    seeded.runToCompletion();
    expect(seeded.outputs().get('x')).toEqual([5, 6, 7, 8].map((pos) => pseudoToken(1234, pos, PROFILE.model.vocabSize)));
  });
});
