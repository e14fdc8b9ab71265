// `pdspec check`: verifies a policy end to end — exhaustive exploration of the spec with the policy's
// splits, the property campaign of the engine against the spec, the monotonicity properties, SLO sweeps on
// the Azure traces and on Poisson load — and writes a report people would rather look at than read.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Mode } from '../../engine/engine.ts';
import { loadPolicy, loadPolicyInstances, PolicyFault, PolicyLoadError, type PolicyHandle, type PolicyInstances } from '../../engine/policies/index.ts';
import { CHECK_PROFILE, latencyModel, loadProfile, type Profile } from '../../engine/profile.ts';
import { failureTrace, replayOf, runCampaign, sharingDetail, speculativeDetail } from '../../properties/campaign.ts';
import { CAD_CONFIG, DEFAULT_CONFIG, SHARING_CONFIG, V3_CONFIG, type ExploreConfig } from '../../properties/explore/config.ts';
import { explore, type ExploreResult } from '../../properties/explore/explorer.ts';
import { policySplit } from '../../properties/explore/policy-split.ts';
import { modeForPolicy, policySweeps } from '../../properties/sweep.ts';
import { guardedCheck, PolicyHang } from '../../properties/monotonicity/guard.ts';
import { checkProfile, type CheckResult as MonotonicityResult } from '../../properties/monotonicity/index.ts';
import { intOption, MAX_BUDGET_SECONDS, parseOptions, shellWord, UsageError, type Command } from '../common.ts';
import { InternalError, reportCrash } from '../crash.ts';
import type { CheckResult, PolicyReport, ReportData, Sweep } from '../../properties/report-data.ts';
import { ReportDir } from '../report/report-dir.ts';
import { describeExploreBound, describeSharingCoverage, describeV3Coverage, exploreCheckResult, reportSources, slug, VERDICT_EXIT, VERDICT_WORD } from '../report/results.ts';
import { selfTest } from '../../properties/self-test.ts';

const BUILT_INS = ['static', 'semi-pd', 'nexus', 'unified', 'disaggregated'];
const usage = 'pdspec check [--policy NAME|FILE ...] [--budget SECONDS] [--seed N] [--self-test] [--report DIR] [--json]';

/** Where `check` reports as it goes: a line per result, or a progress line per phase on a terminal. */
class Progress {
  private readonly tty = process.stderr.isTTY === true && !process.env.CI;
  constructor(private readonly quiet: boolean) {}
  phase(policy: string, phase: string): void {
    if (this.tty && !this.quiet) process.stderr.write(`\r\x1b[K  ${policy.padEnd(14)} ${phase} …`);
  }
  tick(policy: string, phase: string, fraction: number): void {
    if (!this.tty || this.quiet) return;
    const width = 24;
    const done = Math.round(Math.min(1, fraction) * width);
    process.stderr.write(`\r\x1b[K  ${policy.padEnd(14)} ${phase.padEnd(10)} [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${Math.round(fraction * 100)}%`);
  }
  result(policy: string, r: CheckResult): void {
    if (this.quiet) return;
    if (this.tty) process.stderr.write('\r\x1b[K');
    const mark = r.status === 'pass' ? 'pass' : r.status === 'fail' ? 'FAIL' : r.status === 'warn' ? 'note' : r.status;
    console.log(`  ${policy.padEnd(14)} ${r.check.padEnd(10)} ${mark.padEnd(5)} ${r.seconds.toFixed(1).padStart(6)} s  ${r.detail}`);
  }
}

interface Context {
  seed: number;
  budget: number;
  reportDir: string;
  profile: Profile;
  progress: Progress;
  command: string;
  /** Engine crashes met on the way (internal errors, each with its replay): the run then exits 70. */
  crashes: InternalError[];
  /** The shared-KV explorations by mode (explore check): searched once per run. */
  sharing?: Map<Mode, ExploreResult>;
  /** The trace-v3 explorations by mode (explore check): searched once per run. */
  v3?: Map<Mode, ExploreResult>;
  /** The core-attention exploration (trace v4, explore check): one bound, searched once per run. */
  cad?: ExploreResult;
}

export function exploreConfigFor(mode: Mode): ExploreConfig {
  if (mode === 'unified') return { ...DEFAULT_CONFIG, mode, resizes: 0 };
  if (mode === 'disaggregated') return { ...DEFAULT_CONFIG, mode, resizes: 0, requests: 2, blocks: 4 };
  if (mode === 'nexus') return { ...DEFAULT_CONFIG, mode, splits: [{ prefill: 70, decode: 30 }] };
  return { ...DEFAULT_CONFIG, mode };
}

/**
 * The explore command that searches `config` again: the policy, the mode, and the bound where it is not the
 * explorer's default (disaggregated is checked at a smaller one; the rest follows from the mode).
 */
export function exploreReplay(policyName: string, config: ExploreConfig): string {
  const flags = [`--policy ${shellWord(policyName)}`];
  if (config.mode !== DEFAULT_CONFIG.mode) flags.push(`--mode ${config.mode}`);
  if (config.requests !== DEFAULT_CONFIG.requests) flags.push(`--requests ${config.requests}`);
  if (config.blocks !== DEFAULT_CONFIG.blocks) flags.push(`--blocks ${config.blocks}`);
  return `npx pdspec explore ${flags.join(' ')}`;
}

async function exploreCheck(ctx: Context, policyName: string, handle: PolicyHandle, mode: Mode): Promise<CheckResult> {
  const t0 = performance.now();
  const config = exploreConfigFor(mode);
  const model = latencyModel(ctx.profile);
  if (mode === 'semi-pd' || mode === 'nexus') config.policy = { name: handle.name, decide: (sys) => policySplit(sys, handle, model, { ttft: 0.4, tpot: 0.2 }) };
  ctx.progress.phase(policyName, 'explore');
  const r = explore(config, { progress: (n) => ctx.progress.tick(policyName, 'explore', Math.min(0.99, n / 400_000)) });
  const replay = exploreReplay(policyName, config);
  const v1 = exploreCheckResult(r, config, replay, ctx.reportDir, policyName, (performance.now() - t0) / 1000);
  if (v1.status !== 'pass') return v1;
  // The shared-KV bound (trace v2): it has no resize, so the policy never decides in it; each mode's is searched once.
  const sharing = sharingConfigFor(mode);
  ctx.sharing ??= new Map();
  let s = ctx.sharing.get(mode);
  if (!s) ctx.sharing.set(mode, (s = explore(sharing)));
  const seconds = (performance.now() - t0) / 1000;
  if (s.verdict !== 'verified') return exploreCheckResult(s, sharing, sharingReplay(sharing), ctx.reportDir, `${policyName} sharing`, seconds);
  // The v3 bound (speculative verifies, a sliding window, preemption while prefilling): no resize either.
  const v3 = v3ConfigFor(mode);
  ctx.v3 ??= new Map();
  let v3r = ctx.v3.get(mode);
  if (!v3r) ctx.v3.set(mode, (v3r = explore(v3)));
  const total = (performance.now() - t0) / 1000;
  if (v3r.verdict !== 'verified') return exploreCheckResult(v3r, v3, v3Replay(v3), ctx.reportDir, `${policyName} v3`, total);
  // The core-attention bound (trace v4): a unified engine with attention servers, the same for every policy.
  ctx.cad ??= explore(CAD_CONFIG);
  const cad = ctx.cad;
  const all = (performance.now() - t0) / 1000;
  if (cad.verdict !== 'verified') return exploreCheckResult(cad, CAD_CONFIG, 'npx pdspec explore --mode cad', ctx.reportDir, `${policyName} cad`, all);
  return {
    ...v1,
    seconds: all,
    detail: `${v1.detail}; trace v2 at ${describeExploreBound(sharing)}: ${s.states.toLocaleString('en')} states${describeSharingCoverage(s)}; trace v3 at ${describeExploreBound(v3)}: ${v3r.states.toLocaleString('en')} states${describeV3Coverage(v3r)}; trace v4 (core-attention disaggregation) at ${describeExploreBound(CAD_CONFIG)}: ${cad.states.toLocaleString('en')} states`,
  };
}

/**
 * The trace-v3 bound `check` searches in a mode: the explorer's `--positions` default; with two pools, one
 * draft and shorter requests in 4 blocks a pool (the default takes 3 million states there).
 */
export function v3ConfigFor(mode: Mode): ExploreConfig {
  if (mode === 'disaggregated') return { ...V3_CONFIG, mode, blocks: 4, prompt: 2, chunk: 2, output: 2, drafts: 1 };
  if (mode === 'nexus') return { ...V3_CONFIG, mode, splits: [{ prefill: 70, decode: 30 }] };
  return { ...V3_CONFIG, mode };
}

/** The explore command that searches the v3 bound `config` again. */
export function v3Replay(config: ExploreConfig): string {
  const flags = ['--positions'];
  if (config.mode !== V3_CONFIG.mode) flags.push(`--mode ${config.mode}`);
  for (const [k, flag] of [['blocks', 'blocks'], ['prompt', 'prompt'], ['chunk', 'chunk'], ['output', 'output'], ['drafts', 'drafts']] as const)
    if (config[k] !== V3_CONFIG[k]) flags.push(`--${flag} ${config[k]}`);
  return `npx pdspec explore ${flags.join(' ')}`;
}

/** The shared-KV bound (trace v2) `check` searches in a mode: the explorer's `--sharing` default, smaller with two pools. */
export function sharingConfigFor(mode: Mode): ExploreConfig {
  if (mode === 'disaggregated') return { ...SHARING_CONFIG, mode, blocks: 3, preemptions: 0 };
  if (mode === 'nexus') return { ...SHARING_CONFIG, mode, splits: [{ prefill: 70, decode: 30 }] };
  return { ...SHARING_CONFIG, mode };
}

/** The explore command that searches the shared-KV bound `config` again. */
export function sharingReplay(config: ExploreConfig): string {
  const flags = ['--sharing'];
  if (config.mode !== SHARING_CONFIG.mode) flags.push(`--mode ${config.mode}`);
  if (config.blocks !== SHARING_CONFIG.blocks) flags.push(`--blocks ${config.blocks}`);
  if (config.preemptions !== SHARING_CONFIG.preemptions) flags.push(`--preemptions ${config.preemptions}`);
  return `npx pdspec explore ${flags.join(' ')}`;
}

function campaignCheck(ctx: Context, policyName: string, instances: PolicyInstances, mode: Mode, seconds: number): CheckResult {
  ctx.progress.phase(policyName, 'campaign');
  // A fresh instance per run where the policy can make one: the replay runs the failing case alone, on a
  // fresh instance too, so it decides exactly as the campaign did.
  const policy = instances.fresh ?? instances.handle;
  const result = runCampaign({ seed: ctx.seed, runs: 1_000_000, modes: [mode], policy, timeLimitMs: seconds * 1000 });
  if (result.ok)
    return {
      check: 'campaign',
      property: 'agreement, safety, liveness, output invariance',
      family: 'all',
      status: 'pass',
      seconds: result.seconds,
      detail: `${result.runs} random runs (seed ${ctx.seed}) in ${mode} mode: every event allowed, every invariant held, the observable state agreed; quiescence, no stall, no preemption cascade, output invariance; ${sharingDetail(result.sharing)}; ${speculativeDetail(result.speculative)}`,
    };
  const f = result.failure!;
  const replay = replayOf(f.seed, f.path, f.replayPath, [mode], undefined, shellWord(policyName));
  // One object shared by every run: if it keeps state, the replay's fresh start may decide differently.
  const shared = instances.fresh ? '' : `; ${policyName} makes no fresh instances (a module exporting one Policy object, not a factory, or a command whose handshake does not say "instances"), so every run shared it: if it keeps state, this replay may not be exact`;
  if (f.property === 'crash') {
    // An engine crash is pdspec's own fault, not a property the policy broke: an error (exit 70, a crash file).
    ctx.crashes.push(new InternalError(`the engine crashed in the campaign of ${policyName}: ${f.message} (replay: ${replay})`, { cause: f.error }));
    return { check: 'campaign', property: 'engine crash', family: 'internal error', status: 'error', seconds: result.seconds, detail: `the engine crashed (an internal error of pdspec, not a verdict): ${f.message}${shared}`, replay };
  }
  const file = `cex-${slug(policyName)}-campaign.jsonl`;
  const lines = failureTrace(f, replay);
  writeFileSync(join(ctx.reportDir, file), `${lines.join('\n')}\n`);
  return {
    check: 'campaign',
    property: f.property,
    family: f.family,
    status: 'fail',
    seconds: result.seconds,
    detail: `${f.message} (shrunk to ${f.scenario.workload.length} request(s), ${f.commands.length} command(s))${shared}`,
    counterexample: { traceFile: file, replay, header: f.header, events: f.events },
  };
}

const MONOTONICITY_COVERS = {
  M1: 'latency model monotone, concave',
  M2: 'deterministic; share monotone in pressure',
  M3: 'attainment monotone in SLO, capacity',
} as const;

/** A monotonicity result as a report check: a failure fails the policy only where `required`. */
function fromMonotonicity(m: MonotonicityResult, required: boolean, what: string, seconds: number): CheckResult {
  const failing = m.clauses.filter((c) => !c.holds).map((c) => c.clause);
  const ce = m.counterexample;
  // A policy that faulted (threw, NaN, out of range) is bad input, not a counterexample: never a violation.
  const faulted = (ce?.data as { fault?: unknown } | undefined)?.fault !== undefined;
  return {
    check: m.property,
    property: faulted ? 'policy fault' : failing.length ? `${m.property} ${failing.join(', ')}` : MONOTONICITY_COVERS[m.property],
    family: faulted ? 'bad input' : 'SLO-policy monotonicity',
    status: m.holds ? 'pass' : faulted ? 'error' : required ? 'fail' : 'warn',
    seconds,
    detail: m.holds
      ? `${what}: holds over ${m.runs} generated cases (seed ${m.seed})`
      : faulted
        ? `${what}: ${ce!.summary}`
        : `${what}: ${ce?.summary ?? 'fails'}${required ? '' : ' — a finding, not required of this policy'}`,
    ...(ce ? { pair: { left: ce.lines[2] ?? '', right: ce.lines.slice(3).join('; '), outcome: ce.summary } } : {}),
    ...(ce && !m.holds ? { replay: m.replay } : {}),
  };
}

async function monotonicity(ctx: Context, policyName: string, claims: boolean): Promise<CheckResult[]> {
  ctx.progress.phase(policyName, 'monotonic');
  let t0 = performance.now();
  // A policy that is not a trusted built-in runs on a watched worker here: a hang is stopped (PolicyHang).
  // M2 and M3 on the run's profile: the model the policies decide with and the engine the sweeps run.
  const m2 = await guardedCheck('M2', policyName, { seed: ctx.seed, profile: ctx.profile.name });
  // Determinism is required of every policy, claimed or not: without it no replay of its runs is exact.
  const required = claims || m2.counterexample?.clause === 'deterministic';
  const r2 = fromMonotonicity(m2, required, claims ? 'more pressure never lowers its phase share (claimed); decisions are deterministic' : 'more pressure never lowers its phase share (not claimed); decisions are deterministic (required)', (performance.now() - t0) / 1000);
  t0 = performance.now();
  // M3: looser SLOs (and, for a policy that claims monotonicity, more blocks or SMs) never lower
  // attainment. A failure is a scheduling anomaly of the system, reported with its smallest workload.
  const m3 = await guardedCheck('M3', policyName, { seed: ctx.seed, numRuns: 60, profile: ctx.profile.name });
  const r3 = fromMonotonicity(m3, false, 'looser SLOs or more capacity never lower attainment', (performance.now() - t0) / 1000);
  return [r2, r3];
}

async function sweeps(ctx: Context, policyName: string, mode: Mode): Promise<{ sweeps: Sweep[]; run: PolicyReport['run'] }> {
  const policy = () => loadPolicy(policyName, { profile: ctx.profile, isolate: 'auto' });
  return policySweeps({ policy, mode, profile: ctx.profile, seed: ctx.seed, onPlan: (done, total) => ctx.progress.tick(policyName, 'sweeps', done / total) });
}

function summaryTable(report: ReportData, reportDir: string): string {
  const checks = [...new Set(report.policies.flatMap((p) => p.checks.map((c) => c.check)))];
  const head = ['check'.padEnd(10), ...report.policies.map((p) => p.name.padEnd(14))].join(' ');
  const rows = checks.map((c) =>
    [
      c.padEnd(10),
      ...report.policies.map((p) => {
        const r = p.checks.find((x) => x.check === c);
        const cell = !r ? '-' : r.status === 'pass' ? 'pass' : r.status === 'fail' ? `FAIL ${r.property}` : r.status === 'warn' ? `note ${r.property}` : r.status;
        return cell.slice(0, 14).padEnd(14);
      }),
    ].join(' '),
  );
  const sweepRows = report.policies.map((p) => `  ${p.name}: rate at ≥ 90 % attainment — ${p.sweeps.map((s) => `${s.workload} ${s.rateAt90 ?? '<min'} req/s`).join(', ')}`);
  // Each failure with its evidence: the counterexample trace beside the report, and the command that replays it.
  const evidence: string[] = [];
  for (const p of report.policies)
    for (const c of p.checks) {
      if (c.status !== 'fail' && c.status !== 'error') continue;
      evidence.push(`  ${p.name} ${c.check}: ${c.property}`);
      if (c.counterexample) evidence.push(`    counterexample: ${join(reportDir, c.counterexample.traceFile)}`);
      const replay = c.counterexample?.replay ?? c.replay;
      if (replay) evidence.push(`    replay: ${replay}`);
      if (!c.counterexample && !replay) evidence.push(`    ${c.detail}`);
    }
  return [head, ...rows, ...(evidence.length ? ['', 'Failures:', ...evidence] : []), '', 'SLO sweeps (TTFT 2 s, TPOT 0.1 s; rates per GPU):', ...sweepRows].join('\n');
}

export const check: Command = {
  name: 'check',
  summary: [
    'Verifies policies end to end (the built-in ones, or --policy FILE): exhaustive exploration of the spec with',
    "the policy's splits, the property campaign of the engine in lockstep with the spec, SLO sweeps on the Azure",
    'traces and Poisson load, and (with --self-test) the bug zoo. Writes report/index.html and report/report.json.',
    'Exit 0: every property holds; 1: a property failed (the counterexample is in the report); 2: bad input,',
    'including a policy that faults (throws, returns NaN or an out-of-range split, or hangs) and no property failed.',
  ].join('\n'),
  usage,
  async run(args) {
    const { values, positionals } = parseOptions(
      args,
      {
        policy: { type: 'string', multiple: true },
        budget: { type: 'string' },
        seed: { type: 'string' },
        'self-test': { type: 'boolean' },
        report: { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    const seed = intOption(values.seed, 'seed', 1, 0);
    const budget = intOption(values.budget, 'budget', 180, 10, MAX_BUDGET_SECONDS);
    const report = ReportDir.open(values.report ?? 'report');
    const reportDir = report.final;
    const policies = values.policy ?? BUILT_INS;
    const progress = new Progress(values.json === true);
    const profile = loadProfile(CHECK_PROFILE);
    const ctx: Context = { seed, budget, reportDir: report.staging, profile, progress, command: ['pdspec check', ...args].join(' '), crashes: [] };
    const started = performance.now();
    const startedAt = new Date().toISOString();
    const reports: PolicyReport[] = [];
    const m1Start = performance.now();
    const m1 = fromMonotonicity(checkProfile(profile.name, { seed }), true, `the latency model of ${profile.name}`, (performance.now() - m1Start) / 1000);
    if (!values.json) console.log(`pdspec check — ${policies.length} polic${policies.length === 1 ? 'y' : 'ies'}, seed ${seed}, budget ${budget} s\n`);
    for (const name of policies) {
      // One handle for the checks that ask one instance, and fresh instances for the campaign's runs.
      let instances: PolicyInstances;
      try {
        instances = await loadPolicyInstances(name, { profile, isolate: 'auto' });
      } catch (err) {
        if (err instanceof PolicyLoadError) throw new UsageError(err.message);
        throw err;
      }
      const handle: PolicyHandle = instances.handle;
      const mode = modeForPolicy(BUILT_INS.includes(name) ? name : 'user');
      const checks: CheckResult[] = [];
      const report: PolicyReport = { name: handle.name, source: handle.source, claimsMonotone: handle.claimsMonotone, checks, sweeps: [] };
      try {
        const shown = handle.name;
        const ex = await exploreCheck(ctx, name, handle, mode);
        checks.push(ex);
        progress.result(shown, ex);
        const cp = campaignCheck(ctx, name, instances, mode, Math.max(3, (budget * 0.25) / policies.length));
        checks.push(cp);
        progress.result(shown, cp);
        checks.push(m1);
        progress.result(shown, m1);
        for (const m of await monotonicity(ctx, name, handle.claimsMonotone)) {
          checks.push(m);
          progress.result(shown, m);
        }
        progress.phase(shown, 'sweeps');
        const t0 = performance.now();
        const { sweeps: sw, run } = await sweeps(ctx, name, mode);
        report.sweeps = sw;
        report.run = run;
        const sweepCheck: CheckResult = {
          check: 'sweeps',
          property: 'SLO attainment',
          family: 'performance',
          status: 'pass',
          seconds: (performance.now() - t0) / 1000,
          detail: sw.map((s) => `${s.workload}: ${s.rateAt90 ?? '<' + s.points[0].rate} req/s at ≥ 90 %`).join('; '),
        };
        checks.push(sweepCheck);
        progress.result(shown, sweepCheck);
      } catch (err) {
        if (!(err instanceof PolicyFault) && !(err instanceof PolicyHang)) throw err;
        const fault: CheckResult = { check: 'policy', property: 'policy fault', family: 'bad input', status: 'error', seconds: 0, detail: err.message };
        checks.push(fault);
        progress.result(handle.name, fault);
      } finally {
        await instances.close();
      }
      reports.push(report);
    }
    let zoo: ReportData['selfTest'];
    if (values['self-test']) {
      if (!values.json) console.log('\nself-test: the bug zoo, each fault switch of the engine caught by the property it breaks');
      zoo = await selfTest({
        seed,
        onRow: (r) => {
          if (!values.json)
            console.log(
              `  ${r.id.padEnd(4)} ${r.fault.padEnd(34)} ${r.caught ? 'caught' : 'MISSED'}  ${String(r.property).padEnd(26)} ${r.events} event(s), ${r.seconds.toFixed(1)} s`,
            );
        },
      });
    }
    const failed = reports.some((p) => p.checks.some((c) => c.status === 'fail')) || (zoo?.some((r) => !r.caught) ?? false);
    // A policy that faulted (threw, NaN, out of range, hung) is bad input — unless a property failed too.
    const faulted = reports.some((p) => p.checks.some((c) => c.status === 'error'));
    // An engine crash outranks both: pdspec failed, so nothing this run found is a verdict a script may act on.
    const verdict: ReportData['verdict'] = ctx.crashes.length ? 'internal-error' : failed ? 'violated' : faulted ? 'bad-input' : 'holds';
    const data: ReportData = {
      version: 1,
      command: ctx.command,
      seed,
      verdict,
      startedAt,
      seconds: (performance.now() - started) / 1000,
      policies: reports,
      ...(zoo ? { selfTest: zoo } : {}),
      sources: reportSources(profile),
    };
    await report.commit(data);
    if (values.json) console.log(JSON.stringify(data));
    else {
      console.log(`\n${summaryTable(data, reportDir)}\n`);
      console.log(`${VERDICT_WORD[verdict]} — report: ${join(reportDir, 'index.html')} (data: report.json; ${data.seconds.toFixed(0)} s)`);
    }
    // The report and the replay are written; the crash itself gets the one line and crash file of exit 70.
    if (ctx.crashes.length) return reportCrash('check', ctx.crashes[0], ['check', ...args]);
    return VERDICT_EXIT[verdict];
  },
};
