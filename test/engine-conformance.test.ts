// Every engine run's trace is judged by the spec: replayed through the checker with quiescence required.
// Azure slices in every mode, and random seeded workloads with aborts, preemption (small pools) and resizes.
import { describe, expect, it } from 'vitest';
import { defaultBlocks } from '../engine/profile.ts';
import { loadAzure } from '../engine/workloads/azure.ts';
import { scaleToRate } from '../engine/workloads/synthetic.ts';
import { cyclingPolicy, explain, MODES, PROFILE, smallWorkload, tracedRun } from './engine-fixtures.ts';

describe('engine traces conform to the spec (quiescent)', () => {
  it.each(MODES)('Azure conversation slice, %s mode, shipped pool', (mode) => {
    const workload = loadAzure('conv').slice(0, 300);
    expect(workload[299].id).toBe('conv-299');
    const run = tracedRun({ mode, workload, blocks: defaultBlocks(PROFILE, 16), blockSize: 16 });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    expect(run.result.metrics.requests.finished).toBe(300);
    if (run.verdict.verdict === 'conforms') expect(run.verdict.ended).toBe(300);
  });

  it.each(MODES)('Azure conversation slice at 10 req/s on a small pool, %s mode: preemption and recompute', (mode) => {
    const workload = scaleToRate(loadAzure('conv').slice(0, 150), 10);
    const run = tracedRun({ mode, workload, blocks: 500, blockSize: 16, policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.5) : null });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    expect(run.result.metrics.preemptions).toBeGreaterThan(0);
    expect(run.result.stalled).toEqual([]);
  });

  it('random seeded workloads with aborts, small pools and resizes, every mode', () => {
    const totals = { preemptions: 0, resizes: 0, aborted: 0, rejected: 0, runs: 0 };
    for (let seed = 1; seed <= 24; seed++) {
      for (const mode of MODES) {
        const workload = smallWorkload(seed, 40, { rate: 40, abortFraction: 0.25, abortAfter: 0.2 });
        const run = tracedRun({
          mode,
          workload,
          blocks: 30 + ((seed * 7) % 60),
          blockSize: 1 + (seed % 5),
          seed,
          policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.03) : null,
          allocator: mode === 'semi-pd' ? (seed % 2 ? 'decode-owned' : 'lock') : undefined,
          allocEvents: seed % 3 === 0 ? 'steps' : 'atomic',
          prefillChunk: 16 + seed * 5,
          unifiedChunk: seed % 4 === 0 ? 0 : 32,
          maxBatch: 2 + (seed % 7),
        });
        expect(run.verdict.verdict, `seed ${seed}, ${mode}\n${explain(run.verdict)}`).toBe('conforms');
        expect(run.result.stalled, `seed ${seed}, ${mode}`).toEqual([]);
        const m = run.result.metrics;
        expect(m.requests.finished + m.requests.aborted + m.requests.rejected).toBe(workload.length);
        totals.preemptions += m.preemptions;
        totals.resizes += run.result.resizes;
        totals.aborted += m.requests.aborted;
        totals.rejected += m.requests.rejected;
        totals.runs++;
      }
    }
    // The runs exercised what they claim to.
    expect(totals.runs).toBe(96);
    expect(totals.preemptions).toBeGreaterThan(50);
    expect(totals.resizes).toBeGreaterThan(100);
    expect(totals.aborted).toBeGreaterThan(50);
    expect(totals.rejected).toBeGreaterThan(0);
  });

  it('a resize in flight at the end of the run completes before the trace ends', () => {
    // One request, and a policy that asks for a new split at its first tick, long after the request ended.
    const workload = [{ id: 'only', arrival: 0, prompt: 8, output: 2 }];
    let asked = false;
    const policy = { name: 'late', interval: 0.001, decide: () => (asked ? {} : ((asked = true), { split: { prefill: 40, decode: 60 } })) };
    const run = tracedRun({ mode: 'semi-pd', workload, blocks: 8, blockSize: 4, policy });
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    expect(run.result.resizes).toBe(1);
    expect(run.text).toContain('"ev":"resize_end"');
  });
});
