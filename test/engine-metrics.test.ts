// Metrics arithmetic on hand-made cases.
import { describe, expect, it } from 'vitest';
import { distribution, meetsSlo, quantile, summarize, tpotOf, ttftOf, type RequestRecord } from '../engine/metrics.ts';

function rec(partial: Partial<RequestRecord> & { id: string }): RequestRecord {
  return { arrival: 0, prompt: 10, maxTokens: 3, generated: 3, firstTokenAt: 1, lastTokenAt: 2, endAt: 2, outcome: 'finished', preemptions: 0, ...partial };
}

describe('quantiles and distributions', () => {
  it('interpolates linearly between closest ranks', () => {
    const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(quantile(v, 0.5)).toBeCloseTo(5.5, 12);
    expect(quantile(v, 0.9)).toBeCloseTo(9.1, 12);
    expect(quantile(v, 0.99)).toBeCloseTo(9.91, 12);
    expect(quantile(v, 0)).toBe(1);
    expect(quantile(v, 1)).toBe(10);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('summarises unsorted values', () => {
    const d = distribution([4, 1, 3, 2]);
    expect(d).toEqual({ count: 4, mean: 2.5, p50: 2.5, p90: expect.closeTo(3.7, 12), p99: expect.closeTo(3.97, 12), max: 4 });
    expect(distribution([]).mean).toBeNaN();
  });
});

describe('per-request latencies and the SLO', () => {
  it('TTFT is arrival to first token; TPOT is the mean gap between tokens', () => {
    const r = rec({ id: 'a', arrival: 10, firstTokenAt: 10.5, lastTokenAt: 12.5, generated: 5 });
    expect(ttftOf(r)).toBeCloseTo(0.5, 12);
    expect(tpotOf(r)).toBeCloseTo(0.5, 12);
    expect(tpotOf(rec({ id: 'b', generated: 1 }))).toBeNaN();
  });

  it('both SLOs must hold; a one-token request has no TPOT to miss; rejected requests miss', () => {
    const slo = { ttft: 1, tpot: 0.1 };
    expect(meetsSlo(rec({ id: 'ok', arrival: 0, firstTokenAt: 0.9, lastTokenAt: 1.05, generated: 3 }), slo)).toBe(true);
    expect(meetsSlo(rec({ id: 'slow-first', arrival: 0, firstTokenAt: 1.2, lastTokenAt: 1.3, generated: 3 }), slo)).toBe(false);
    expect(meetsSlo(rec({ id: 'slow-tokens', arrival: 0, firstTokenAt: 0.5, lastTokenAt: 0.9, generated: 3 }), slo)).toBe(false);
    expect(meetsSlo(rec({ id: 'one', arrival: 0, firstTokenAt: 0.5, lastTokenAt: 0.5, generated: 1 }), slo)).toBe(true);
    expect(meetsSlo(rec({ id: 'rej', outcome: 'rejected', generated: 0 }), slo)).toBe(false);
  });
});

describe('summarize', () => {
  it('counts outcomes, attainment over judged requests, goodput and throughput over the makespan', () => {
    const slo = { ttft: 1, tpot: 0.1 };
    const records = [
      rec({ id: 'a', arrival: 0, firstTokenAt: 0.5, lastTokenAt: 0.7, endAt: 0.7, generated: 3 }), // meets
      rec({ id: 'b', arrival: 1, firstTokenAt: 2.5, lastTokenAt: 2.7, endAt: 2.7, generated: 3 }), // TTFT 1.5: misses
      rec({ id: 'c', arrival: 2, firstTokenAt: 2.1, lastTokenAt: 2.1, endAt: 2.1, generated: 1 }), // meets
      rec({ id: 'd', arrival: 3, firstTokenAt: Number.NaN, lastTokenAt: Number.NaN, endAt: 3.5, generated: 0, outcome: 'aborted' }),
      rec({ id: 'e', arrival: 4, firstTokenAt: Number.NaN, lastTokenAt: Number.NaN, endAt: 4, generated: 0, outcome: 'rejected', preemptions: 2 }),
    ];
    const m = summarize(records, slo, { kvOccupancy: [{ t: 1, used: 0.2 }, { t: 2, used: 0.6 }] });
    expect(m.requests).toEqual({ total: 5, finished: 3, aborted: 1, rejected: 1, live: 0 });
    expect(m.sloAttainment).toBeCloseTo(2 / 4, 12); // 2 of the 3 finished + 1 rejected
    expect(m.makespan).toBeCloseTo(4, 12); // first arrival 0, last end 4
    expect(m.goodput).toBeCloseTo(2 / 4, 12);
    expect(m.throughput.requestsPerSecond).toBeCloseTo(3 / 4, 12);
    expect(m.outputTokens).toBe(7);
    expect(m.throughput.tokensPerSecond).toBeCloseTo(7 / 4, 12);
    expect(m.ttft.count).toBe(3);
    expect(m.ttft.mean).toBeCloseTo((0.5 + 1.5 + 0.1) / 3, 12);
    expect(m.tpot.count).toBe(2); // the one-token request has no TPOT
    expect(m.tpot.mean).toBeCloseTo(0.1, 12);
    expect(m.e2e.max).toBeCloseTo(1.7, 12);
    expect(m.preemptions).toBe(2);
    expect(m.kvOccupancy.mean).toBeCloseTo(0.4, 12);
    expect(m.kvOccupancy.peak).toBe(0.6);
  });
});
