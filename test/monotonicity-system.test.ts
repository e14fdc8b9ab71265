// M3, the system (properties/monotonicity): looser SLOs, more KV blocks, more SMs never lower SLO
// attainment. What holds is checked; each anomaly found is pinned with its smallest workload and confirmed
// here by running the two configurations through simulate() directly, independently of the checker.
import { describe, expect, it } from 'vitest';
import { simulate, type Mode } from '../engine/engine.ts';
import { summarize } from '../engine/metrics.ts';
import type { Policy } from '../engine/policy-api.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import type { TraceEvent } from '../spec/trace-format.ts';
import { BUILTIN_POLICIES } from '../engine/policies/index.ts';
import { loadProfile } from '../engine/profile.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import queueBalance from '../examples/policies/queue-balance.ts';
import { checkSystem, formatResult, M3_CLAUSES, withSms, type CheckResult, type RunConfig } from '../properties/monotonicity/index.ts';

const PROFILE = loadProfile('llama3-8b-h100');
const QUEUE_BALANCE = 'examples/policies/queue-balance.ts';

/** Attainment of each of the counterexample's two configurations, simulated again from its data alone. */
function rerun(result: CheckResult, make: () => Policy, mode: Mode): [number, number] {
  const { workload, configs } = result.counterexample!.data as { workload: WorkloadRequest[]; configs: [RunConfig, RunConfig] };
  const attainment = (c: RunConfig) => {
    const run = simulate({ mode, workload, profile: withSms(PROFILE, c.sms), blocks: c.blocks, blockSize: 16, policy: make(), slo: c.slo });
    expect(run.stalled).toEqual([]);
    return summarize(run.records, c.judgedAgainst).sloAttainment;
  };
  return [attainment(configs[0]), attainment(configs[1])];
}

const workloadOf = (result: CheckResult) => (result.counterexample!.data as { workload: WorkloadRequest[] }).workload;

/** The trace of one of the counterexample's configurations (static policy, semi-PD mode). */
function traceOf(result: CheckResult, which: 0 | 1): TraceEvent[] {
  const { workload, configs } = result.counterexample!.data as { workload: WorkloadRequest[]; configs: [RunConfig, RunConfig] };
  const c = configs[which];
  const sink = new MemorySink();
  simulate({ mode: 'semi-pd', workload, profile: withSms(PROFILE, c.sms), blocks: c.blocks, blockSize: 16, policy: BUILTIN_POLICIES.static.create({}), slo: c.slo, trace: sink });
  return sink.events;
}

/** Steps of a worker as [begin, end, requests]. */
function stepsOf(events: TraceEvent[], worker: string): [number, number, string[]][] {
  const out: [number, number, string[]][] = [];
  for (const e of events) {
    if (e.ev === 'step_begin' && e.worker === worker) out.push([e.t, Number.NaN, e.batch.map((b) => b.req)]);
    if (e.ev === 'step_end' && e.worker === worker) out[out.length - 1]![1] = e.t;
  }
  return out;
}

describe('what M3 requires of whom', () => {
  it('a policy that claims monotonicity gets every clause; one that does not, the SLO clauses and a note', async () => {
    const claimed = await checkSystem('static', { numRuns: 5 });
    expect(claimed.clauses.map((c) => c.clause)).toEqual([...M3_CLAUSES]);
    const unclaimed = await checkSystem('semi-pd', { numRuns: 5 });
    expect(unclaimed.clauses.map((c) => c.clause)).toEqual(['slo', 'slo-judging']);
    expect(unclaimed.notes.join('\n')).toContain("'semi-pd' does not claim monotonicity: blocks and sms not required");
  });
});

describe('looser SLOs', () => {
  it.each(['static', 'unified', 'disaggregated', 'nexus', 'semi-pd', QUEUE_BALANCE])(
    '%s: judging one run against looser SLOs never lowers attainment (the control)',
    async (policy) => {
      const result = await checkSystem(policy, { clauses: ['slo-judging'], numRuns: 60 });
      expect(result.holds, formatResult(result)).toBe(true);
    },
  );

  it.each(['static', 'unified', 'disaggregated', 'nexus', 'semi-pd'])('%s: looser SLOs, seen by the policy, never lower attainment', async (policy) => {
    // static, unified, disaggregated and nexus never read Observation.slo: both runs are the same schedule.
    // semi-pd reads it (its schedule differs in about 6 % of these cases) and no case lowered attainment.
    const result = await checkSystem(policy, { clauses: ['slo'], numRuns: 150 });
    expect(result.holds, formatResult(result)).toBe(true);
  });

  it('finding: queue-balance sees its SLOs, so looser ones change its split and can lower attainment', async () => {
    const result = await checkSystem(QUEUE_BALANCE, { clauses: ['slo'], seed: 6, numRuns: 200 });
    expect(result.holds).toBe(false);
    expect(workloadOf(result).length).toBeLessThanOrEqual(6);
    const [tight, loose] = rerun(result, () => queueBalance(), 'semi-pd');
    expect(loose).toBeLessThan(tight);
    expect(result.counterexample!.lines.join('\n')).toMatch(/resize/);
  });
});

describe('finding: more KV blocks or SMs can lower attainment, even for static (claims monotonicity)', () => {
  const fixed = () => BUILTIN_POLICIES.static.create({});

  it('blocks, rejection relief: with one block too few a long request is rejected and the short one is served at once', async () => {
    const result = await checkSystem('static', { clauses: ['blocks'], seed: 1, numRuns: 200 });
    const workload = workloadOf(result);
    expect(workload).toHaveLength(2);
    const [fewer, more] = rerun(result, fixed, 'semi-pd');
    expect([fewer, more]).toEqual([0.5, 0]);
    const { configs } = result.counterexample!.data as { configs: [RunConfig, RunConfig] };
    // The long request needs exactly the larger pool: ceil((prompt + output − 1) / 16) blocks.
    const long = workload.reduce((a, b) => (a.prompt > b.prompt ? a : b));
    expect(Math.ceil((long.prompt + long.output - 1) / 16)).toBe(configs[1].blocks);
  });

  it('blocks, early start: one more block starts a long prompt at once beside a busy decode worker, at the oversubscribed share', async () => {
    const result = await checkSystem('static', { clauses: ['blocks'], seed: 2, numRuns: 200 });
    expect(workloadOf(result).map((r) => `${r.id} ${r.arrival} ${r.prompt}+${r.output}`)).toEqual(['r0 0 576+8', 'r1 0 1424+2', 'r2 0.083 1584+1', 'r3 0.083 16+1']);
    const [fewer, more] = rerun(result, fixed, 'semi-pd');
    expect([fewer, more]).toEqual([0.5, 0]);
    // 227 blocks: r2 (99 blocks + the 1 % watermark) waits until r0 and r1 finish, then r2 and r3 prefill
    // together with decode idle. 228 blocks: r2 starts alone the moment it arrives, while D0 is busy, so its
    // step keeps 80·100/180 ≈ 44 % of the GPU throughout; r3, which arrived at the same instant, waits behind it.
    const prefillWith = (which: 0 | 1) => stepsOf(traceOf(result, which), 'P0').find(([, , reqs]) => reqs.includes('r2'))!;
    const decodeBusyAt = (which: 0 | 1, t: number) => stepsOf(traceOf(result, which), 'D0').some(([b, e]) => b <= t && t < e);
    const [beginA, endA, batchA] = prefillWith(0);
    const [beginB, endB, batchB] = prefillWith(1);
    expect(batchA).toEqual(['r2', 'r3']);
    expect(batchB).toEqual(['r2']);
    expect(decodeBusyAt(0, beginA)).toBe(false);
    expect(decodeBusyAt(1, beginB)).toBe(true);
    expect(endB - beginB).toBeGreaterThan(1.5 * (endA - beginA)); // the same prompt, at about half the share
  });

  it("SMs: a faster prefill moves decode's step boundaries, and a first token then waits out one more decode step", async () => {
    const result = await checkSystem('static', { clauses: ['sms'], seed: 12, numRuns: 300 });
    expect(workloadOf(result).map((r) => `${r.id} ${r.arrival} ${r.prompt}+${r.output}`)).toEqual(['r0 0 512+14', 'r1 0.106 16+1', 'r2 0.106 16+1']);
    const [fewer, more] = rerun(result, fixed, 'semi-pd');
    expect(more).toBeLessThan(fewer);
    // semi-PD appends a request's first token when the decode worker pops its FIFO, between decode steps.
    // 132 SMs: r1's prefill ends before D0's step does and its token comes at that step's end. 135 SMs: r0's
    // faster prefill moved every decode step ≈ 0.4 ms earlier, r1's prefill ends just after a step began, and
    // its token waits for that step to end.
    const firstTokenWait = (which: 0 | 1) => {
      const events = traceOf(result, which);
      const [, prefillEnd] = stepsOf(events, 'P0').find(([, , reqs]) => reqs.includes('r1'))!;
      const token = events.find((e) => e.ev === 'token' && e.req === 'r1' && e.index === 0)!.t;
      const waitedOn = stepsOf(events, 'D0').find(([b, e]) => b <= prefillEnd && prefillEnd < e)!;
      expect(waitedOn[1]).toBe(token); // the token comes when the decode step running at prefill's end ends
      return token - prefillEnd;
    };
    expect(firstTokenWait(1)).toBeGreaterThan(firstTokenWait(0) + 0.005);
  });

  it('a failing M3 check replays to the same counterexample from its seed and path', async () => {
    const first = await checkSystem('static', { clauses: ['blocks'], seed: 2, numRuns: 200 });
    const again = await checkSystem('static', first.replayOptions as object);
    expect(again.counterexample).toEqual(first.counterexample);
    expect(again.runs).toBe(1);
    expect(first.replay).toBe(`npx pdspec monotonicity M3 static '{"seed":2,"numRuns":200,"clauses":["blocks"],"path":"${first.counterexample!.path}"}'`);
  });
});
