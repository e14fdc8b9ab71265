// `pdspec sweep`: the SLO curves alone — attainment, goodput and latencies against request rate for each
// policy on the Azure traces and Poisson load — written into the same report as `pdspec check`.
import { join } from 'node:path';
import { loadPolicy, PolicyFault, PolicyLoadError } from '../../engine/policies/index.ts';
import { DEFAULT_PROFILE, loadProfile, ProfileError, type Profile } from '../../engine/profile.ts';
import { MAX_SYNTHETIC_REQUESTS } from '../../engine/workloads/synthetic.ts';
import { DEFAULT_SLO, modeForPolicy, policySweeps, SWEEP_WORKLOADS, type SweepWorkload } from '../../properties/sweep.ts';
import { intOption, numberOption, parseOptions, sloOption, UsageError, type Command } from '../common.ts';
import type { CheckResult, PolicyReport, ReportData, Sweep } from '../../properties/report-data.ts';
import { ReportDir } from '../report/report-dir.ts';
import { reportSources, VERDICT_EXIT, VERDICT_WORD } from '../report/results.ts';

const BUILT_INS = ['static', 'semi-pd', 'nexus', 'unified', 'disaggregated'];
const usage = [
  'pdspec sweep [--policy NAME|FILE ...] [--workload azure-conv|azure-code|poisson ...] [--rates R,R,...]',
  '             [--duration S] [--slo TTFT,TPOT] [--profile NAME|FILE] [--seed N] [--report DIR] [--json]',
].join('\n');

/** The highest rate a sweep offers: a minute of arrivals at it is 600,000 requests, held in memory. */
const MAX_RATE = 10_000;

/** The longest arrivals a sweep point may have: at a high rate, an hour is millions of requests. */
const MAX_DURATION = 3_600;

function parseRates(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const rates = text.split(',').map((x) => (x.trim() === '' ? Number.NaN : Number(x)));
  if (!rates.length || rates.some((r) => !(r > 0))) throw new UsageError(`--rates must be request rates > 0 separated by commas (e.g. 2,4,8), got '${text}'`);
  if (rates.some((r) => r > MAX_RATE)) throw new UsageError(`--rates must be at most ${MAX_RATE.toLocaleString('en')} requests per second per GPU, got '${text}'`);
  return [...new Set(rates)].sort((a, b) => a - b);
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)} %`;
}

/** One policy's curves as plain lines: a row per rate, and the rate at 90 % attainment. */
function sweepLines(policy: string, s: Sweep): string[] {
  const lines = [`${policy} · ${s.workload} · SLO TTFT ≤ ${s.slo.ttft} s, TPOT ≤ ${s.slo.tpot} s · rate at ≥ 90 %: ${s.rateAt90 === null ? 'never' : `${s.rateAt90} req/s`} (rates and goodput per GPU)`];
  lines.push('   rate  attained  goodput  TTFT p90  TPOT p90  resizes');
  for (const p of s.points)
    lines.push(
      `  ${String(p.rate).padStart(5)}  ${pct(p.attainment).padStart(8)}  ${p.goodput.toFixed(2).padStart(7)}  ${p.ttft.p90.toFixed(3).padStart(8)}  ${p.tpot.p90.toFixed(4).padStart(8)}  ${String(p.resizes).padStart(7)}`,
    );
  return lines;
}

export const sweep: Command = {
  name: 'sweep',
  summary: [
    'SLO curves alone: for each policy (the built-in ones, or --policy NAME|FILE), SLO attainment, goodput and',
    'TTFT/TPOT against request rate on the Azure conversation and code traces and on Poisson load, in the',
    "cost-model simulator, plus one run in detail at the first workload's knee (latency distributions, the",
    'split over time with resizes, KV occupancy). Writes report/index.html and report/report.json like check.',
    'Exit 0: the sweeps ran; 2: bad input, including a policy that faulted (threw, returned NaN or an',
    'out-of-range split, or hung): the report still shows the fault and the observation it faulted on.',
  ].join('\n'),
  usage,
  async run(args) {
    const { values, positionals } = parseOptions(
      args,
      {
        policy: { type: 'string', multiple: true },
        workload: { type: 'string', multiple: true },
        rates: { type: 'string' },
        duration: { type: 'string' },
        slo: { type: 'string' },
        profile: { type: 'string' },
        seed: { type: 'string' },
        report: { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    const workloads = (values.workload ?? SWEEP_WORKLOADS) as SweepWorkload[];
    for (const w of workloads)
      if (!SWEEP_WORKLOADS.includes(w)) throw new UsageError(`--workload must be one of ${SWEEP_WORKLOADS.join(', ')}, got '${w}'`);
    const rates = parseRates(values.rates);
    const duration = numberOption(values.duration, 'duration', 60);
    if (!(duration > 0)) throw new UsageError(`--duration must be a number of seconds > 0, got '${values.duration}'`);
    if (duration > MAX_DURATION) throw new UsageError(`--duration must be at most ${MAX_DURATION.toLocaleString('en')} s of arrivals per point, got '${values.duration}'`);
    if (rates && Math.max(...rates) * duration > MAX_SYNTHETIC_REQUESTS) throw new UsageError(`--rates × --duration must be at most ${MAX_SYNTHETIC_REQUESTS.toLocaleString('en')} requests per point, got ${Math.max(...rates)} × ${duration}`);
    const slo = sloOption(values.slo, DEFAULT_SLO);
    const seed = intOption(values.seed, 'seed', 1, 0);
    let profile: Profile;
    try {
      profile = loadProfile(values.profile ?? DEFAULT_PROFILE);
    } catch (err) {
      if (err instanceof ProfileError) throw new UsageError(err.message);
      throw err;
    }
    const policies = values.policy ?? BUILT_INS;
    const report = ReportDir.open(values.report ?? 'report');
    const reportDir = report.final;
    const command = ['pdspec sweep', ...args].join(' ');
    const started = performance.now();
    const startedAt = new Date().toISOString();
    // Every policy must load before any sweep runs: a bad one is bad input, found in a second, not a minute.
    const loaded: PolicyReport[] = [];
    for (const name of policies) {
      try {
        const handle = await loadPolicy(name, { profile, isolate: 'auto' });
        loaded.push({ name: handle.name, source: handle.source, claimsMonotone: handle.claimsMonotone, checks: [], sweeps: [] });
        await handle.close();
      } catch (err) {
        if (err instanceof PolicyLoadError) throw new UsageError(err.message);
        throw err;
      }
    }
    const reports: PolicyReport[] = [];
    if (!values.json)
      console.log(`pdspec sweep — ${policies.length} polic${policies.length === 1 ? 'y' : 'ies'} × ${workloads.join(', ')}, rates ${rates ? rates.join(', ') : 'the defaults'} req/s, ${duration} s of arrivals each, seed ${seed}\n`);
    for (const [i, name] of policies.entries()) {
      const report = loaded[i];
      const t0 = performance.now();
      try {
        const { sweeps, run } = await policySweeps({
          policy: () => loadPolicy(name, { profile, isolate: 'auto' }),
          mode: modeForPolicy(BUILT_INS.includes(name) ? name : 'user'),
          profile,
          seed,
          workloads,
          rates,
          duration,
          slo,
        });
        report.sweeps = sweeps;
        report.run = run;
        report.checks.push({
          check: 'sweeps',
          property: 'SLO attainment',
          family: 'performance',
          status: 'pass',
          seconds: (performance.now() - t0) / 1000,
          detail: sweeps.map((s) => `${s.workload}: ${s.rateAt90 ?? `<${s.points[0].rate}`} req/s at ≥ 90 %`).join('; '),
        });
        if (!values.json) console.log(`${sweeps.flatMap((s) => sweepLines(report.name, s)).join('\n')}\n`);
      } catch (err) {
        if (!(err instanceof PolicyFault)) throw err;
        const fault: CheckResult = { check: 'policy', property: 'policy fault', family: 'bad input', status: 'error', seconds: (performance.now() - t0) / 1000, detail: err.message };
        report.checks.push(fault);
        if (!values.json) console.error(`pdspec sweep: ${err.message}`);
      }
      reports.push(report);
    }
    const verdict: ReportData['verdict'] = reports.some((p) => p.checks.some((c) => c.status === 'error')) ? 'bad-input' : 'holds';
    const data: ReportData = {
      version: 1,
      command,
      seed,
      verdict,
      startedAt,
      seconds: (performance.now() - started) / 1000,
      policies: reports,
      sources: reportSources(profile),
    };
    await report.commit(data);
    if (values.json) console.log(JSON.stringify(data));
    else console.log(`${verdict === 'holds' ? 'done' : VERDICT_WORD[verdict]} — report: ${join(reportDir, 'index.html')} (data: report.json; ${data.seconds.toFixed(0)} s)`);
    return VERDICT_EXIT[verdict];
  },
};
