// M3, the system: for the same workload and seed, SLO attainment never falls when
//   slo          the SLOs are looser — the policy sees them (Observation.slo), so its schedule may change;
//   slo-judging  the same run is judged against looser SLOs — the policy does not see the change (a control:
//                this holds for every policy by construction, so a failure of `slo` is the policy's doing);
//   blocks       the KV pool has more blocks;
//   sms          the GPU has more SMs (the profile's SM count and dense FLOP/s scaled together: the same SMs,
//                more of them; memory bandwidth unchanged).
// The resource clauses are required of a policy that claims monotonicity (claimsMonotone) and checked for
// the others only when asked for.
//
// A case is (workload, difference, system): shrinking removes requests and shortens them first, so a failure
// comes back as the smallest workload that shows the anomaly, then the smallest difference, then the system.
import fc from 'fast-check';
import { simulate, type RunResult } from '../../engine/engine.ts';
import { meetsSlo, tpotOf, ttftOf, type RequestRecord } from '../../engine/metrics.ts';
import type { Slo } from '../../engine/policy-api.ts';
import { PolicyFault } from '../../engine/policies/index.ts';
import { noteHang, throwNotedHang } from './hang.ts';
import { DEFAULT_PROFILE, loadProfile, validateProfile, type Profile } from '../../engine/profile.ts';
import type { WorkloadRequest } from '../../engine/workloads/types.ts';
import { DEFAULT_SEED } from './latency.ts';
import { assemble, literal, num, OK, runClauses, replayCommand, type CheckResult, type Clause, type Verdict } from './result.ts';
import { closeSubject, policySubject, type PolicySubject, type SubjectOptions } from './subject.ts';
import { describeWorkload, systemSpec, workloadOf, workloadSpec, type RequestSpec, type SystemSpec } from './workload.ts';

export const M3_CLAUSES = ['slo', 'slo-judging', 'blocks', 'sms'] as const;
export type M3Clause = (typeof M3_CLAUSES)[number];

export interface SystemCheckOptions {
  seed?: number;
  /** Cases per clause (default 100). */
  numRuns?: number;
  /** Default: slo and slo-judging, plus blocks and sms for a policy that claims monotonicity. */
  clauses?: readonly M3Clause[];
  path?: string;
  /** Profile to simulate with (default llama3-8b-h100). */
  profile?: string;
  /** Most requests in a workload (default 16). */
  maxRequests?: number;
  /** Tokens per KV block (default 16). */
  blockSize?: number;
  /** The engine's seed (pseudo-tokens; the cost model's timing does not depend on it). */
  engineSeed?: number;
}

interface Looser {
  ttftMs: number;
  tpotMs: number;
}

/** One configuration's run, reduced to what attainment rests on. */
interface Outcome {
  label: string;
  slo: Slo;
  met: Set<string>;
  judged: number;
  records: Map<string, RequestRecord>;
  resizes: number;
  preemptions: number;
  stalled: string[];
}

const moreBlocks = fc.integer({ min: 0, max: 400 });
const looserSlo: fc.Arbitrary<Looser> = fc.record({ ttftMs: fc.integer({ min: 0, max: 3000 }), tpotMs: fc.integer({ min: 0, max: 100 }) });
/** Extra SMs as a percentage of the profile's (0..100 %: up to twice the GPU). */
const moreSmsPercent = fc.integer({ min: 0, max: 100 });

const sloOf = (s: SystemSpec): Slo => ({ ttft: s.sloTtftMs / 1000, tpot: s.sloTpotMs / 1000 });
const looserSloOf = (s: SystemSpec, d: Looser): Slo => ({ ttft: (s.sloTtftMs + d.ttftMs) / 1000, tpot: (s.sloTpotMs + d.tpotMs) / 1000 });

/** The profile's GPU with `sms` SMs, each as fast as before: dense FLOP/s scale with the count. */
export function withSms(profile: Profile, sms: number): Profile {
  const scaled = { ...profile, name: `${profile.name}@${sms}sm`, gpu: { ...profile.gpu, sms, denseFlops: (profile.gpu.denseFlops * sms) / profile.gpu.sms } };
  return validateProfile(scaled, 'the scaled profile');
}

/** The profile with `percent` % more SMs (rounded to whole SMs). */
export function withMoreSms(profile: Profile, percent: number): Profile {
  return withSms(profile, Math.round(profile.gpu.sms * (1 + percent / 100)));
}

function outcomeOf(label: string, run: RunResult, judgedAgainst: Slo): Outcome {
  const met = new Set<string>();
  let judged = 0;
  for (const r of run.records) {
    if (r.outcome === 'finished' || r.outcome === 'rejected') judged++;
    if (meetsSlo(r, judgedAgainst)) met.add(r.id);
  }
  return {
    label,
    slo: judgedAgainst,
    met,
    judged,
    records: new Map(run.records.map((r) => [r.id, r])),
    resizes: run.resizes,
    preemptions: run.metrics.preemptions,
    stalled: run.stalled,
  };
}

const ms = (s: number) => (Number.isNaN(s) ? '—' : `${num(s * 1000, 4)} ms`);

function requestLine(id: string, a: Outcome, b: Outcome): string {
  const side = (o: Outcome) => {
    const r = o.records.get(id)!;
    if (r.outcome !== 'finished') return r.outcome;
    return `TTFT ${ms(ttftOf(r))} TPOT ${ms(tpotOf(r))}${r.preemptions ? `, ${r.preemptions} preemption(s)` : ''}`;
  };
  return `${id}: ${side(a)} → ${side(b)}`;
}

/** A run's configuration, as data: enough to run it again with simulate(). */
export interface RunConfig {
  blocks: number;
  /** The SLOs the policy saw. */
  slo: Slo;
  /** The SLOs attainment was judged against. */
  judgedAgainst: Slo;
  sms: number;
}

/** Whether `b` attains at least what `a` does; otherwise the requests that flipped, in words. */
function compareOutcomes(what: string, context: string[], workload: WorkloadRequest[], a: Outcome, b: Outcome, configs: [RunConfig, RunConfig]): Verdict {
  for (const o of [a, b]) {
    if (o.stalled.length > 0) {
      return {
        ok: false,
        summary: `${o.label}: the run stalled with ${o.stalled.length} request(s) live (${o.stalled.join(', ')}) — a liveness failure, not an attainment one`,
        lines: [...context, `workload: ${describeWorkload(workload)}`],
        data: { stalled: o.stalled, workload, configs },
      };
    }
  }
  // No aborts are generated, so both runs judge every request: the same denominator.
  const attained = (o: Outcome) => o.met.size / o.judged;
  if (attained(b) >= attained(a)) return OK;
  const lost = [...a.met].filter((id) => !b.met.has(id));
  const gained = [...b.met].filter((id) => !a.met.has(id));
  const side = (o: Outcome) =>
    `${o.label}: attainment ${o.met.size}/${o.judged} against TTFT ${ms(o.slo.ttft)} / TPOT ${ms(o.slo.tpot)} (${o.resizes} resize(s), ${o.preemptions} preemption(s))`;
  return {
    ok: false,
    summary: `${what} lowered SLO attainment ${a.met.size}/${a.judged} → ${b.met.size}/${b.judged} on ${workload.length} request(s) (missed now: ${lost.join(', ')})`,
    lines: [
      ...context,
      `workload (${workload.length}): ${describeWorkload(workload)}`,
      side(a),
      side(b),
      ...lost.map((id) => `lost ${requestLine(id, a, b)}`),
      ...gained.map((id) => `gained ${requestLine(id, a, b)}`),
    ],
    data: { workload, configs, attainment: [attained(a), attained(b)], lost, gained },
  };
}

interface Setting {
  subject: PolicySubject;
  profile: Profile;
  blockSize: number;
  engineSeed: number;
}

function run(setting: Setting, workload: WorkloadRequest[], blocks: number, slo: Slo, profile = setting.profile): RunResult {
  const { subject } = setting;
  const policy = subject.fresh ? subject.fresh() : subject.shared!;
  return simulate({ mode: subject.mode, workload, profile, blocks, blockSize: setting.blockSize, policy, slo, seed: setting.engineSeed });
}

function context(setting: Setting, s: SystemSpec, varying: string): string[] {
  return [
    `policy '${setting.subject.name}' in ${setting.subject.mode} mode, profile ${setting.profile.name}, ${setting.blockSize}-token blocks; ${varying}`,
    `system: ${s.blocks} blocks, SLO TTFT ${s.sloTtftMs} ms / TPOT ${s.sloTpotMs} ms`,
  ];
}

/** A policy fault inside a run is a counterexample of its own kind. */
function guarded(verdict: () => Verdict): Verdict {
  try {
    return verdict();
  } catch (err) {
    if (!(err instanceof PolicyFault)) throw err;
    noteHang(err);
    return { ok: false, summary: `the policy faulted during the run: ${err.message}`, lines: [err.message], data: { fault: { kind: err.kind, detail: err.detail } } };
  }
}

function systemClauses(setting: Setting, maxRequests: number): Clause<unknown>[] {
  const workloads = workloadSpec(maxRequests);
  const slo: Clause<[RequestSpec[], Looser, SystemSpec]> = {
    name: 'slo',
    statement: 'looser SLOs (which the policy sees) never lower SLO attainment',
    arbitrary: fc.tuple(workloads, looserSlo, systemSpec),
    verdict: ([specs, d, s]) =>
      guarded(() => {
        const workload = workloadOf(specs);
        const tight = sloOf(s);
        const loose = looserSloOf(s, d);
        const a = outcomeOf('tight SLOs', run(setting, workload, s.blocks, tight), tight);
        const b = outcomeOf(`looser SLOs (+${d.ttftMs} ms TTFT, +${d.tpotMs} ms TPOT)`, run(setting, workload, s.blocks, loose), loose);
        const sms = setting.profile.gpu.sms;
        return compareOutcomes('looser SLOs', context(setting, s, 'both runs see their own SLOs'), workload, a, b, [
          { blocks: s.blocks, slo: tight, judgedAgainst: tight, sms },
          { blocks: s.blocks, slo: loose, judgedAgainst: loose, sms },
        ]);
      }),
  };
  const judging: Clause<[RequestSpec[], Looser, SystemSpec]> = {
    name: 'slo-judging',
    statement: 'judging the same run against looser SLOs never lowers SLO attainment',
    arbitrary: fc.tuple(workloads, looserSlo, systemSpec),
    verdict: ([specs, d, s]) =>
      guarded(() => {
        const workload = workloadOf(specs);
        const tight = sloOf(s);
        const loose = looserSloOf(s, d);
        const once = run(setting, workload, s.blocks, tight);
        const sms = setting.profile.gpu.sms;
        return compareOutcomes('judging against looser SLOs', context(setting, s, 'one run, judged twice'), workload, outcomeOf('tight SLOs', once, tight), outcomeOf('looser SLOs', once, loose), [
          { blocks: s.blocks, slo: tight, judgedAgainst: tight, sms },
          { blocks: s.blocks, slo: tight, judgedAgainst: loose, sms },
        ]);
      }),
  };
  const blocks: Clause<[RequestSpec[], number, SystemSpec]> = {
    name: 'blocks',
    statement: 'more KV blocks never lower SLO attainment',
    arbitrary: fc.tuple(workloads, moreBlocks, systemSpec),
    verdict: ([specs, extra, s]) =>
      guarded(() => {
        const workload = workloadOf(specs);
        const target = sloOf(s);
        const a = outcomeOf(`${s.blocks} blocks`, run(setting, workload, s.blocks, target), target);
        const b = outcomeOf(`${s.blocks + extra} blocks`, run(setting, workload, s.blocks + extra, target), target);
        const sms = setting.profile.gpu.sms;
        return compareOutcomes(`${extra} more KV block(s)`, context(setting, s, `blocks ${s.blocks} → ${s.blocks + extra}`), workload, a, b, [
          { blocks: s.blocks, slo: target, judgedAgainst: target, sms },
          { blocks: s.blocks + extra, slo: target, judgedAgainst: target, sms },
        ]);
      }),
  };
  const sms: Clause<[RequestSpec[], number, SystemSpec]> = {
    name: 'sms',
    statement: 'more SMs never lower SLO attainment',
    arbitrary: fc.tuple(workloads, moreSmsPercent, systemSpec),
    verdict: ([specs, percent, s]) =>
      guarded(() => {
        const workload = workloadOf(specs);
        const target = sloOf(s);
        const bigger = withMoreSms(setting.profile, percent);
        const a = outcomeOf(`${setting.profile.gpu.sms} SMs`, run(setting, workload, s.blocks, target), target);
        const b = outcomeOf(`${bigger.gpu.sms} SMs`, run(setting, workload, s.blocks, target, bigger), target);
        return compareOutcomes(`${bigger.gpu.sms - setting.profile.gpu.sms} more SMs`, context(setting, s, `SMs ${setting.profile.gpu.sms} → ${bigger.gpu.sms}`), workload, a, b, [
          { blocks: s.blocks, slo: target, judgedAgainst: target, sms: setting.profile.gpu.sms },
          { blocks: s.blocks, slo: target, judgedAgainst: target, sms: bigger.gpu.sms },
        ]);
      }),
  };
  return [slo, judging, blocks, sms] as Clause<unknown>[];
}

/** M3 for a built-in name, a module path, or a PolicySubject. */
export async function checkSystem(policy: string | PolicySubject, options: SystemCheckOptions & SubjectOptions = {}): Promise<CheckResult> {
  const profileName = options.profile ?? DEFAULT_PROFILE;
  const profile = loadProfile(profileName);
  const subject = typeof policy === 'string' ? await policySubject(policy, { ...options, profile }) : policy;
  try {
    const seed = options.seed ?? DEFAULT_SEED;
    const numRuns = options.numRuns ?? 100;
    const selected = options.clauses ?? (subject.claimsMonotone ? M3_CLAUSES : (['slo', 'slo-judging'] as const));
    const setting: Setting = { subject, profile, blockSize: options.blockSize ?? 16, engineSeed: options.engineSeed ?? 0 };
    const maxRequests = options.maxRequests ?? 16;
    const runOptions = { seed, numRuns, ...(options.path !== undefined ? { path: options.path } : {}) };
    throwNotedHang();
    const results = runClauses(systemClauses(setting, maxRequests), selected, runOptions);
    throwNotedHang();
    const extra: Record<string, unknown> = {};
    for (const key of ['profile', 'maxRequests', 'blockSize', 'engineSeed', 'policyOptions', 'mode'] as const) if (options[key] !== undefined) extra[key] = options[key];
    if (subject.shared?.isolated) extra.isolate = true;
    const notes = [
      subject.fresh ? 'a fresh policy instance per run' : 'one shared policy instance for every run (fair only for a stateless policy)',
      `${subject.mode} mode, profile ${profileName}, up to ${maxRequests} requests per workload, no aborts`,
    ];
    if (options.clauses === undefined && !subject.claimsMonotone) notes.push(`'${subject.name}' does not claim monotonicity: blocks and sms not required (pass clauses to check them)`);
    const replay = (o: object) => (subject.source === undefined ? `checkSystem(<the policy>, ${literal(o)})` : replayCommand('M3', subject.source, o));
    return assemble('M3', `policy '${subject.name}'`, results, runOptions, extra, replay, notes);
  } finally {
    if (typeof policy === 'string') await closeSubject(subject);
  }
}
