// The published comparisons of semi-PD (Hong et al., arXiv 2504.19867) and Nexus (Shi et al., arXiv
// 2507.06608), rerun in the simulator: capacity (highest per-GPU rate at ≥ 90 % SLO attainment), mean
// end-to-end latency and TTFT/TPOT ratios, beside the papers' headline numbers; and the same sweep on the
// Azure traces. run.ts prints it; docs/reproduction.md holds a run and the account of the differences.
import { tpotOf, ttftOf } from '../../engine/metrics.ts';
import type { Slo } from '../../engine/policy-api.ts';
import { loadAzure } from '../../engine/workloads/azure.ts';
import { searchCapacity, type Runner, type Scenario } from './search.ts';
import { ALL_SYSTEMS, DISTSERVE, NEXUS, NEXUS_SYSTEMS, SEMI_PD, SEMI_PD_SYSTEMS, SGLANG, VLLM_S, type System } from './systems.ts';
import { azureWindow, LONGBENCH, NEXUS_LONG, NEXUS_MID, paperWorkload, SHAREGPT, type PaperWorkload } from './workloads.ts';

export interface Sizes {
  seeds: readonly number[];
  /** Requests per run: short prompts (ShareGPT-like), long prompts (LongBench-like, Nexus), Azure windows. */
  short: number;
  long: number;
  azure: number;
  /** Bisection steps of the capacity search. */
  steps: number;
}

/** Capacities within this fraction of each other are reported as a tie (the search resolves about 1.4 %). */
export const TIE = 0.03;

export function paperScenario(w: PaperWorkload, requests: number): Scenario {
  return { key: `${w.name}/${requests}`, build: (rate, seed) => paperWorkload(w, rate, requests, seed) };
}

/** Each seed serves another window of the trace: seed k starts at request (k − 1) · 2,500 (wrapping). */
export function azureScenario(which: 'conv' | 'code', requests: number): Scenario {
  const length = loadAzure(which).length;
  return { key: `azure-${which}/${requests}`, build: (rate, seed) => azureWindow(which, rate, requests, ((seed - 1) * 2500) % (length - requests + 1)) };
}

export interface Capacity {
  system: System;
  perSeed: number[];
  mean: number;
  /** The search gives up below this rate (a capacity of 0 means "below floor"). */
  floor: number;
  /** Per seed, the lowest rate found missing the target (just above the capacity). */
  failsAt: number[];
}

/** How far below its start rate the search looks before reporting no capacity. */
export const FLOOR_FACTOR = 1 / 40;

export function capacity(runner: Runner, system: System, scenario: Scenario, slo: Slo, sizes: Sizes, start: number): Capacity {
  const floor = start * FLOOR_FACTOR;
  const found = sizes.seeds.map((seed) => searchCapacity((rate) => runner.attainment(system, scenario, rate, seed, slo), { start, steps: sizes.steps, min: floor }));
  const perSeed = found.map((f) => f.capacity);
  return { system, perSeed, mean: perSeed.reduce((s, c) => s + c, 0) / perSeed.length, floor, failsAt: found.map((f) => f.failsAt) };
}

/**
 * Which SLO part a system breaks first: at the first seed's failing rate (just above its capacity), the
 * percentages of judged requests missing the TTFT and the TPOT objective.
 */
export function binding(runner: Runner, c: Capacity, scenario: Scenario, slo: Slo, seed: number): string {
  const rate = c.failsAt[0];
  if (!Number.isFinite(rate)) return '—';
  const records = runner.records(c.system, scenario, rate, seed, slo);
  let judged = 0;
  let ttft = 0;
  let tpot = 0;
  for (const r of records) {
    if (r.outcome !== 'finished' && r.outcome !== 'rejected') continue;
    judged++;
    if (r.outcome === 'rejected' || !(ttftOf(r) <= slo.ttft)) ttft++;
    const t = tpotOf(r);
    if (r.outcome === 'rejected' || (!Number.isNaN(t) && t > slo.tpot)) tpot++;
  }
  const pct = (n: number) => `${Math.round((100 * n) / Math.max(1, judged))}`;
  return `${pct(ttft)} / ${pct(tpot)}`;
}

/** "a > b ≈ c": systems by capacity, ≈ where two neighbours are within TIE. */
export function orderingText(caps: readonly Capacity[]): string {
  const sorted = [...caps].sort((a, b) => b.mean - a.mean);
  return sorted.map((c, i) => (i === 0 ? '' : c.mean >= sorted[i - 1].mean * (1 - TIE) ? ' ≈ ' : ' > ') + c.system.id).join('');
}

/** The pairs the paper orders one way and the simulator the other (ties within TIE are not violations). */
export function orderViolations(caps: readonly Capacity[], paperOrder: readonly string[]): string[] {
  const byId = new Map(caps.map((c) => [c.system.id, c.mean]));
  const out: string[] = [];
  for (let i = 0; i < paperOrder.length; i++) {
    for (let j = i + 1; j < paperOrder.length; j++) {
      const a = byId.get(paperOrder[i]);
      const b = byId.get(paperOrder[j]);
      if (a === undefined || b === undefined) continue;
      if (a < b * (1 - TIE)) out.push(`${paperOrder[i]} < ${paperOrder[j]}`);
    }
  }
  return out;
}

function fmtRate(r: number): string {
  return r >= 10 ? r.toFixed(1) : r >= 1 ? r.toFixed(2) : r.toFixed(3);
}

function fmtCap(c: Capacity): string {
  if (c.mean === 0) return `< ${fmtRate(c.floor)}`;
  if (c.perSeed.length === 1) return fmtRate(c.mean);
  return `${fmtRate(c.mean)} (${fmtRate(Math.min(...c.perSeed))}–${fmtRate(Math.max(...c.perSeed))})`;
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(2)}×` : a > 0 ? '∞' : '—';
}

// ---------------------------------------------------------------------------------------------
// semi-PD: Llama3-8B on one A100-80G

export interface SemiPdSetting {
  id: string;
  workload: PaperWorkload;
  slo: Slo;
  /** First rate of the search, per GPU. */
  start: number;
  long: boolean;
  /** Also measure the end-to-end latency comparison here (once per workload). */
  e2e: boolean;
}

export const SEMI_PD_SETTINGS: readonly SemiPdSetting[] = [
  { id: 'ShareGPT, tight SLO', workload: SHAREGPT, slo: { ttft: 0.3, tpot: 0.15 }, start: 16, long: false, e2e: true },
  { id: 'ShareGPT, loose SLO', workload: SHAREGPT, slo: { ttft: 0.4, tpot: 0.2 }, start: 16, long: false, e2e: false },
  { id: 'LongBench, tight SLO', workload: LONGBENCH, slo: { ttft: 2.25, tpot: 0.13 }, start: 0.4, long: true, e2e: true },
  { id: 'LongBench, loose SLO', workload: LONGBENCH, slo: { ttft: 3, tpot: 0.18 }, start: 0.4, long: true, e2e: false },
];

/** semi-PD's headline capacity ratios over each baseline (Llama models, ≥ 90 % SLO attainment). */
export const SEMI_PD_PAPER_RATIOS: Readonly<Record<string, number>> = { 'static(100,100)': 1.11, 'vLLM-S': 1.55, 'vLLM-D': 1.72, DistServe: 1.62 };
/** The ordering those ratios imply. */
export const SEMI_PD_PAPER_ORDER: readonly string[] = ['semi-PD', 'static(100,100)', 'vLLM-S', 'DistServe', 'vLLM-D'];
/** semi-PD's mean end-to-end latency reduction over SGLang (DeepSeek models). */
export const SEMI_PD_PAPER_E2E = '1.27–2.58×';

export interface SettingResult {
  setting: SemiPdSetting;
  caps: Capacity[];
  violations: string[];
  /** Per system (same order as caps): % missing TTFT / % missing TPOT just above its capacity. */
  binding: string[];
}

export function semiPdCapacities(
  runner: Runner,
  sizes: Sizes,
  settings: readonly SemiPdSetting[] = SEMI_PD_SETTINGS,
  systems: readonly System[] = SEMI_PD_SYSTEMS,
): SettingResult[] {
  return settings.map((setting) => {
    const scenario = paperScenario(setting.workload, setting.long ? sizes.long : sizes.short);
    const caps = systems.map((s) => capacity(runner, s, scenario, setting.slo, sizes, setting.start));
    const bound = caps.map((c) => binding(runner, c, scenario, setting.slo, sizes.seeds[0]));
    return { setting, caps, violations: orderViolations(caps, SEMI_PD_PAPER_ORDER), binding: bound };
  });
}

/** The semi-PD systems with one running-batch cap for all (the sensitivity to the implementations' defaults). */
export function withBatchCap(systems: readonly System[], maxBatch: number): System[] {
  return systems.map((s) => ({ ...s, extra: { ...s.extra, maxBatch } }));
}

export function semiPdTable(results: readonly SettingResult[]): string {
  const head = ['setting (SLO TTFT / TPOT)', ...SEMI_PD_SYSTEMS.map((s) => s.id)];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of results) {
    const cells = r.caps.map(fmtCap);
    lines.push(`| ${r.setting.id} (${r.setting.slo.ttft} s / ${r.setting.slo.tpot} s): capacity, req/s per GPU | ${cells.join(' | ')} |`);
    const semi = r.caps[0].mean;
    lines.push(`| … semi-PD ÷ system, simulated | — | ${r.caps.slice(1).map((c) => ratio(semi, c.mean)).join(' | ')} |`);
    lines.push(`| … % missing TTFT / TPOT just above capacity (first seed) | ${r.binding.join(' | ')} |`);
  }
  lines.push(`| semi-PD ÷ system, paper (Llama headline) | — | ${SEMI_PD_SYSTEMS.slice(1).map((s) => `${SEMI_PD_PAPER_RATIOS[s.id].toFixed(2)}×`).join(' | ')} |`);
  return lines.join('\n');
}

export function semiPdVerdicts(results: readonly SettingResult[]): string {
  const lines = [`| setting | simulated ordering | paper ordering | verdict |`, `| --- | --- | --- | --- |`];
  const paper = SEMI_PD_PAPER_ORDER.join(' > ');
  for (const r of results) {
    const verdict = r.violations.length === 0 ? 'matches' : `differs: ${r.violations.join('; ')}`;
    lines.push(`| ${r.setting.id} | ${orderingText(r.caps)} | ${paper} | ${verdict} |`);
  }
  return lines.join('\n');
}

export interface E2eRow {
  setting: SemiPdSetting;
  fractions: { fraction: number; rate: number; semiPd: number; sglang: number }[];
}

/** Mean end-to-end latency of the SGLang-like unified baseline over semi-PD's, at fractions of semi-PD's capacity. */
export function semiPdE2e(runner: Runner, sizes: Sizes, results: readonly SettingResult[]): E2eRow[] {
  const fractions = [0.25, 0.5, 0.75, 1];
  return results
    .filter((r) => r.setting.e2e)
    .map((r) => {
      const scenario = paperScenario(r.setting.workload, r.setting.long ? sizes.long : sizes.short);
      const cap = r.caps[0].mean;
      return {
        setting: r.setting,
        fractions: fractions.map((fraction) => {
          const rate = cap * fraction;
          const mean = (s: System) => sizes.seeds.reduce((sum, seed) => sum + runner.metrics(s, scenario, rate, seed, r.setting.slo).e2e.mean, 0) / sizes.seeds.length;
          return { fraction, rate, semiPd: mean(SEMI_PD), sglang: mean(SGLANG) };
        }),
      };
    });
}

export function e2eTable(rows: readonly E2eRow[]): string {
  const lines = [`| workload | rate (fraction of semi-PD's capacity) | semi-PD mean E2E, s | SGLang-like mean E2E, s | reduction (SGLang ÷ semi-PD) |`, `| --- | --- | --- | --- | --- |`];
  for (const row of rows) {
    for (const f of row.fractions) {
      lines.push(`| ${row.setting.workload.name} | ${fmtRate(f.rate)} (${f.fraction}) | ${f.semiPd.toFixed(2)} | ${f.sglang.toFixed(2)} | ${(f.sglang / f.semiPd).toFixed(2)}× |`);
    }
  }
  lines.push(`| paper (DeepSeek models, vs SGLang) | | | | ${SEMI_PD_PAPER_E2E} |`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Nexus: its long-prompt workloads, against unified and disaggregated serving

export interface NexusSetting {
  id: string;
  workload: PaperWorkload;
  slo: Slo;
  start: number;
}

/** Nexus reports latency curves, not an SLO; the capacity search uses semi-PD's loose long-prompt SLO. */
export const NEXUS_SLO: Slo = { ttft: 3, tpot: 0.18 };

export const NEXUS_SETTINGS: readonly NexusSetting[] = [
  { id: NEXUS_LONG.name, workload: NEXUS_LONG, slo: NEXUS_SLO, start: 0.5 },
  { id: NEXUS_MID.name, workload: NEXUS_MID, slo: NEXUS_SLO, start: 0.8 },
];

/** Nexus's headline ratios ("up to") over vLLM and SGLang, and its claim against disaggregated vLLM. */
export const NEXUS_PAPER = {
  'vLLM-S': { throughput: '2.2×', ttft: '20×', tbt: '2.5×' },
  'SGLang-like': { throughput: '2×', ttft: '2×', tbt: '1.7×' },
  DistServe: { throughput: 'matches or exceeds (1.4× per engine with half the GPUs, v1)', ttft: '—', tbt: '—' },
} as const;
export const NEXUS_PAPER_ORDER: readonly string[] = ['Nexus', 'SGLang-like', 'vLLM-S'];

export interface NexusResult {
  setting: NexusSetting;
  caps: Capacity[];
  /** Per baseline: mean TTFT and TPOT ratios (baseline ÷ Nexus) at fractions of the larger capacity. */
  latency: { baseline: System; points: { rate: number; ttft: number; tpot: number }[] }[];
  violations: string[];
  binding: string[];
}

export function nexusResults(runner: Runner, sizes: Sizes, settings: readonly NexusSetting[] = NEXUS_SETTINGS): NexusResult[] {
  return settings.map((setting) => {
    const scenario = paperScenario(setting.workload, sizes.long);
    const caps = NEXUS_SYSTEMS.map((s) => capacity(runner, s, scenario, setting.slo, sizes, setting.start));
    const nexusCap = caps[0].mean;
    const latency = [VLLM_S, SGLANG].map((baseline) => {
      const top = Math.max(nexusCap, caps.find((c) => c.system === baseline)!.mean);
      const points = [0.25, 0.5, 0.75, 1].map((f) => {
        const rate = top * f;
        const mean = (s: System, pick: 'ttft' | 'tpot') =>
          sizes.seeds.reduce((sum, seed) => sum + runner.metrics(s, scenario, rate, seed, setting.slo)[pick].mean, 0) / sizes.seeds.length;
        return { rate, ttft: mean(baseline, 'ttft') / mean(NEXUS, 'ttft'), tpot: mean(baseline, 'tpot') / mean(NEXUS, 'tpot') };
      });
      return { baseline, points };
    });
    const bound = caps.map((c) => binding(runner, c, scenario, setting.slo, sizes.seeds[0]));
    return { setting, caps, latency, violations: orderViolations(caps, NEXUS_PAPER_ORDER), binding: bound };
  });
}

export function nexusTable(results: readonly NexusResult[]): string {
  const lines = [
    `| workload (SLO ${NEXUS_SLO.ttft} s / ${NEXUS_SLO.tpot} s) | baseline | Nexus capacity | baseline capacity | throughput ratio, sim (paper) | mean TTFT ratio, sim range (paper, up to) | mean TPOT ratio, sim range (paper TBT, up to) |`,
    `| --- | --- | --- | --- | --- | --- | --- |`,
  ];
  for (const r of results) {
    const nexus = r.caps[0];
    for (const c of r.caps.slice(1)) {
      const paper = NEXUS_PAPER[c.system.id as keyof typeof NEXUS_PAPER];
      const lat = r.latency.find((l) => l.baseline === c.system);
      const range = (pick: 'ttft' | 'tpot') => {
        if (!lat) return '—';
        const v = lat.points.map((p) => p[pick]);
        return `${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}×`;
      };
      const perGpu = ratio(nexus.mean, c.mean);
      const through = c.system === DISTSERVE ? `${perGpu} per GPU, ${ratio(nexus.mean, c.mean * 2)} per engine` : perGpu;
      lines.push(`| ${r.setting.id} | ${c.system.id} | ${fmtCap(nexus)} | ${fmtCap(c)} | ${through} (${paper.throughput}) | ${range('ttft')} (${paper.ttft}) | ${range('tpot')} (${paper.tbt}) |`);
    }
  }
  return lines.join('\n');
}

export function nexusVerdicts(results: readonly NexusResult[]): string {
  const lines = [`| workload | simulated ordering (per GPU) | paper ordering | verdict | % missing TTFT / TPOT just above capacity |`, `| --- | --- | --- | --- | --- |`];
  for (const r of results) {
    const verdict = r.violations.length === 0 ? 'matches' : `differs: ${r.violations.join('; ')}`;
    const bound = r.caps.map((c, i) => `${c.system.id} ${r.binding[i]}`).join(', ');
    lines.push(`| ${r.setting.id} | ${orderingText(r.caps)} | ${NEXUS_PAPER_ORDER.join(' > ')} (DistServe: Nexus ≥ it per engine) | ${verdict} | ${bound} |`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Azure traces (no paper numbers): which system wins where

export interface AzureSetting {
  id: string;
  which: 'conv' | 'code';
  slo: Slo;
  start: number;
}

/**
 * Our SLOs (no paper sets them). TTFT-bound: a TTFT a little over 3× the full-GPU prefill of the trace's
 * p90 prompt (0.27 s conversation, 0.53 s code) with a loose TPOT; TPOT-bound: a loose TTFT with a TPOT of
 * about twice a lone decode step, where a long prefill chunk in the same step already breaks it.
 */
export const AZURE_SETTINGS: readonly AzureSetting[] = [
  { id: 'conversation, TTFT-bound', which: 'conv', slo: { ttft: 1, tpot: 0.15 }, start: 4 },
  { id: 'conversation, TPOT-bound', which: 'conv', slo: { ttft: 3, tpot: 0.03 }, start: 4 },
  { id: 'code, TTFT-bound', which: 'code', slo: { ttft: 2, tpot: 0.15 }, start: 2 },
  { id: 'code, TPOT-bound', which: 'code', slo: { ttft: 6, tpot: 0.03 }, start: 2 },
];

export interface AzureResult {
  setting: AzureSetting;
  caps: Capacity[];
}

export function azureResults(runner: Runner, sizes: Sizes, settings: readonly AzureSetting[] = AZURE_SETTINGS): AzureResult[] {
  return settings.map((setting) => {
    const scenario = azureScenario(setting.which, sizes.azure);
    return { setting, caps: ALL_SYSTEMS.map((s) => capacity(runner, s, scenario, setting.slo, sizes, setting.start)) };
  });
}

export function azureTable(results: readonly AzureResult[]): string {
  const head = ['trace, SLO (TTFT / TPOT)', ...ALL_SYSTEMS.map((s) => s.id), 'best'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of results) {
    const best = [...r.caps].sort((a, b) => b.mean - a.mean);
    const winners = best.filter((c) => c.mean >= best[0].mean * (1 - TIE)).map((c) => c.system.id);
    lines.push(`| ${r.setting.id} (${r.setting.slo.ttft} s / ${r.setting.slo.tpot} s) | ${r.caps.map(fmtCap).join(' | ')} | ${winners.join(', ')} |`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// What-ifs (whatif.ts): the orderings with one pricing term of the cost model replaced

export interface WhatIfRows {
  name: string;
  semiPd: readonly SettingResult[];
  nexus: readonly NexusResult[];
}

export function whatIfTable(rows: readonly WhatIfRows[]): string {
  const lines = [
    `| cost model | setting | semi-PD (or Nexus) ÷ each baseline | simulated ordering | paper ordering kept? |`,
    `| --- | --- | --- | --- | --- |`,
  ];
  for (const row of rows) {
    for (const r of row.semiPd) {
      const semi = r.caps[0].mean;
      const ratios = r.caps.slice(1).map((c) => `${c.system.id} ${ratio(semi, c.mean)}`).join(', ');
      lines.push(`| ${row.name} | ${r.setting.id} | ${ratios} | ${orderingText(r.caps)} | ${r.violations.length === 0 ? 'yes' : `no: ${r.violations.join('; ')}`} |`);
    }
    for (const r of row.nexus) {
      const nexus = r.caps[0].mean;
      const ratios = r.caps.slice(1).map((c) => `${c.system.id} ${ratio(nexus, c.mean)}`).join(', ');
      lines.push(`| ${row.name} | ${r.setting.id} | ${ratios} | ${orderingText(r.caps)} | ${r.violations.length === 0 ? 'yes' : `no: ${r.violations.join('; ')}`} |`);
    }
  }
  return lines.join('\n');
}

/** Capacities of `systems` on the given Azure settings (the policy what-if's table). */
export function azureVariantTable(runner: Runner, sizes: Sizes, systems: readonly System[], settings: readonly AzureSetting[]): string {
  const head = ['trace, SLO (TTFT / TPOT)', ...systems.map((s) => s.id)];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const setting of settings) {
    const scenario = azureScenario(setting.which, sizes.azure);
    const caps = systems.map((s) => capacity(runner, s, scenario, setting.slo, sizes, setting.start));
    lines.push(`| ${setting.id} (${setting.slo.ttft} s / ${setting.slo.tpot} s) | ${caps.map(fmtCap).join(' | ')} |`);
  }
  return lines.join('\n');
}
