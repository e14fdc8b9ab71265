// Results of the commands as report checks: `check`, `explore`, `run` and `sweep` all write the same report
// (cli/report/render.ts), so a result reads the same wherever it came from.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Profile } from '../../engine/profile.ts';
import type { ExploreConfig } from '../../properties/explore/config.ts';
import { counterexampleLines } from '../../properties/explore/counterexample.ts';
import type { ExploreResult } from '../../properties/explore/explorer.ts';
import { propertyOf, RULES } from '../../spec/invariants.ts';
import { EXIT } from '../common.ts';
import type { CheckResult, ReportData } from '../../properties/report-data.ts';

export function slug(name: string): string {
  return name.replace(/[^a-zA-Z0-9-]+/g, '-').replace(/^-|-$/g, '');
}

export function describeExploreBound(c: ExploreConfig): string {
  const shared = c.sharing ? `, shared KV (prefixes ${c.prefixes.join(',')}, ${c.prefixCache} cache, ${c.forks} fork)` : '';
  if (c.cadServers > 0) return `${c.requests} requests, ${c.blocks} blocks, ${c.aborts} abort, ${c.cadServers} attention servers of ${c.cadBuffers} buffers, ${c.cadShards} query shards per item, ${c.serverLosses} server loss`;
  const v3 = c.positions
    ? `, ${c.drafts > 0 && c.verifies > 0 ? `${c.verifies} ${c.verifies === 1 ? 'verify' : 'verifies'} of 1..${c.drafts} draft(s)` : 'no verify'}${c.window > 0 ? `, window ${c.window}` : ''}${c.stateSlots > 0 ? `, ${c.stateSlots} state slot(s)` : ''}`
    : '';
  return `${c.requests} requests, ${c.blocks} blocks, ${c.resizes} resize(s), ${c.aborts} abort, ${c.preemptions} preemption${shared}${v3}`;
}

/** What a search at a trace-v3 bound covered: its verifies, rejections, partial frees and prefill preemptions (edges of the state graph). */
export function describeV3Coverage(r: ExploreResult): string {
  if (!r.v3) return '';
  const { verifies, rejections, partialFrees, prefillPreemptions } = r.v3;
  const n = (x: number) => x.toLocaleString('en');
  return `; covered ${n(verifies)} verifies, ${n(rejections)} draft rejection(s), ${n(partialFrees)} partial free(s) and ${n(prefillPreemptions)} preemption(s) while prefilling`;
}

/** What a search at a shared-KV bound covered: its prefix hits, evictions and forks (edges of the state graph). */
export function describeSharingCoverage(r: ExploreResult): string {
  if (!r.sharing) return '';
  const { hits, evictions, forks, copies } = r.sharing;
  const n = (x: number) => x.toLocaleString('en');
  return `; covered ${n(hits)} prefix hit(s), ${n(evictions)} eviction(s), ${n(forks)} fork(s) and ${n(copies)} copy-on-write(s)`;
}

/**
 * An exploration as a report check. A violation's counterexample is written as a trace file (v1, v2 at a
 * shared-KV bound, v3 at a v3 bound) into the report directory, named after `label`, so that `pdspec conform` replays it.
 */
export function exploreCheckResult(r: ExploreResult, config: ExploreConfig, replay: string, reportDir: string, label: string, seconds = r.seconds): CheckResult {
  const bound = describeExploreBound(config);
  if (r.verdict === 'verified')
    return { check: 'explore', property: 'safety rules, deadlock, starvation', family: 'all', status: 'pass', seconds, detail: `verified at ${bound}: ${r.states.toLocaleString('en')} states${describeSharingCoverage(r)}${describeV3Coverage(r)}` };
  if (r.verdict === 'incomplete')
    return { check: 'explore', property: '-', family: '-', status: 'error', seconds, detail: `stopped at ${r.states.toLocaleString('en')} states, before the bound was covered (raise --max-states or lower the bound)` };
  const f = r.finding!;
  const file = `cex-${slug(label)}-explore.jsonl`;
  const lines = counterexampleLines(config, f, replay);
  writeFileSync(join(reportDir, file), `${lines.join('\n')}\n`);
  return {
    check: 'explore',
    property: f.rule,
    family: f.rule in RULES ? propertyOf(f.rule as keyof typeof RULES) : 'Liveness',
    status: 'fail',
    seconds,
    detail: `${f.message} (${f.trace.length} events)`,
    counterexample: { traceFile: file, replay, header: JSON.parse(lines[0]), events: f.trace, ...(f.cycle ? { cycle: f.cycle } : {}) },
  };
}

export const VERDICT_EXIT = { holds: EXIT.holds, violated: EXIT.violated, 'bad-input': EXIT.badInput, 'internal-error': EXIT.internal } as const;
export const VERDICT_WORD = { holds: 'holds', violated: 'VIOLATED', 'bad-input': 'BAD INPUT (a policy faulted)', 'internal-error': 'INTERNAL ERROR (the engine crashed; not a verdict)' } as const;

/** The measured data a calibrated profile was fitted to, its license, and how close the fit came. */
function calibrationNote(c: NonNullable<Profile['calibration']>): string {
  const pct = (key: string) => (c.residuals[key] ? `${(c.residuals[key].mape * 100).toFixed(1)} %` : 'n/a');
  return `Step costs fitted to measured kernel latencies: ${c.source}; ${c.license}. Kernel-time error (MAPE) prefill ${pct('steps.prefill')}, decode ${pct('steps.decode')}, mixed ${pct('steps.mixed')} (npm run bench:calibration).`;
}

/** Where the numbers of a report come from. */
export function reportSources(profile: Profile): ReportData['sources'] {
  return {
    profile: `${profile.name}: ${profile.sources?.[0] ?? ''}`,
    traces: ['Azure LLM inference traces 2023 (conversation, code), CC-BY 4.0 — Patel et al., Splitwise, ISCA 2024'],
    notes: [
      'Latencies come from the cost model of the profile (docs/profiles.md), in virtual time.',
      ...(profile.calibration ? [calibrationNote(profile.calibration)] : []),
      'Request rates and goodput are per GPU: disaggregated 1P1D serves on two GPUs and is offered twice the rate.',
    ],
  };
}
