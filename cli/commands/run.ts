// `pdspec run`: serves a workload with the engine in virtual time (the cost-model simulator) and reports
// latency, SLO attainment and goodput; optionally writes the run's trace (format v1) for `pdspec conform`.
import { Engine, EngineConfigError, InvalidDecisionError, type Mode, type PolicyHandle, type RunResult } from '../../engine/engine.ts';
import type { Distribution } from '../../engine/metrics.ts';
import { FAULT_NAMES, type EngineFaults } from '../../engine/faults.ts';
import { defaultBlocks, DEFAULT_PROFILE, loadProfile, ProfileError, type Profile } from '../../engine/profile.ts';
import { JsonlFileSink } from '../../engine/trace-sink.ts';
import { buildWorkload, WORKLOAD_NAMES, WorkloadError, type WorkloadRequest } from '../../engine/workloads/index.ts';
import { EXIT, intOption, numberOption, parseOptions, UsageError, type Command } from '../common.ts';

const MODES: readonly Mode[] = ['semi-pd', 'nexus', 'disaggregated', 'unified'];

const usage = [
  'pdspec run --workload azure-conv|azure-code|poisson|bursty|FILE [--rate R] [--duration S] [--requests N]',
  '           [--prompt-len DIST] [--output-len DIST] [--cv C] [--abort-fraction F] [--abort-after S]',
  '           [--policy NAME|FILE] [--policy-option KEY=VALUE ...] [--mode semi-pd|nexus|disaggregated|unified]',
  '           [--split P:D] [--allocator lock|decode-owned] [--executor cost-model] [--profile NAME|FILE]',
  '           [--slo TTFT,TPOT] [--blocks B] [--block-size T] [--chunk N] [--no-chunking] [--max-batch N]',
  '           [--seed N] [--trace-out FILE] [--json] [--fault NAME ...]',
].join('\n');

const options = {
  workload: { type: 'string' },
  rate: { type: 'string' },
  duration: { type: 'string' },
  requests: { type: 'string' },
  'prompt-len': { type: 'string' },
  'output-len': { type: 'string' },
  cv: { type: 'string' },
  'abort-fraction': { type: 'string' },
  'abort-after': { type: 'string' },
  policy: { type: 'string' },
  'policy-option': { type: 'string', multiple: true },
  mode: { type: 'string' },
  split: { type: 'string' },
  allocator: { type: 'string' },
  executor: { type: 'string' },
  profile: { type: 'string' },
  slo: { type: 'string' },
  blocks: { type: 'string' },
  'block-size': { type: 'string' },
  chunk: { type: 'string' },
  'no-chunking': { type: 'boolean' },
  'max-batch': { type: 'string' },
  seed: { type: 'string' },
  'trace-out': { type: 'string' },
  json: { type: 'boolean' },
  fault: { type: 'string', multiple: true },
} as const;

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = numberOption(value, name, Number.NaN);
  if (!(n > 0)) throw new UsageError(`--${name} must be a number > 0, got '${value}'`);
  return n;
}

function parseSlo(text: string | undefined): { ttft: number; tpot: number } {
  if (text === undefined) return { ttft: 2, tpot: 0.1 };
  const parts = text.split(',');
  const nums = parts.map(Number);
  if (parts.length !== 2 || !nums.every((n) => Number.isFinite(n) && n > 0)) {
    throw new UsageError(`--slo must be TTFT,TPOT in seconds (e.g. 2,0.1), got '${text}'`);
  }
  return { ttft: nums[0], tpot: nums[1] };
}

function parseSplit(text: string | undefined): { prefill: number; decode: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)[:,/](\d+)$/.exec(text);
  if (!m) throw new UsageError(`--split must be PREFILL:DECODE in percent (e.g. 80:100), got '${text}'`);
  return { prefill: Number(m[1]), decode: Number(m[2]) };
}

/** Bug-zoo fault switches by name (engine/faults.ts), for showing that `conform` catches them. */
function parseFaults(list: string[] | undefined): EngineFaults {
  const faults: EngineFaults = {};
  for (const name of list ?? []) {
    if (!(FAULT_NAMES as readonly string[]).includes(name)) throw new UsageError(`unknown --fault '${name}' (known: ${FAULT_NAMES.join(', ')})`);
    faults[name as keyof EngineFaults] = true;
  }
  return faults;
}

function parsePolicyOptions(list: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--policy-option must be KEY=VALUE, got '${item}'`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** The policy module of engine/policies/, loaded on demand (so that a run without a policy never loads it). */
async function openPolicy(name: string, policyOptions: Record<string, unknown>, profile: Profile): Promise<PolicyHandle & { close?: () => Promise<void> }> {
  const policies = await import('../../engine/policies/index.ts');
  try {
    return await policies.loadPolicy(name, { policyOptions, profile });
  } catch (err) {
    if (err instanceof policies.PolicyLoadError) throw new UsageError(err.message);
    throw err;
  }
}

function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function row(name: string, d: Distribution, digits: number): string {
  return `  ${name.padEnd(5)} ${[d.mean, d.p50, d.p90, d.p99].map((x) => fmt(x, digits).padStart(9)).join('')}`;
}

function summaryText(r: RunResult, context: { mode: Mode; policy: string; profile: Profile; workload: string; requests: WorkloadRequest[]; wall: number; trace?: string }): string {
  const m = r.metrics;
  const span = context.requests.length ? context.requests[context.requests.length - 1].arrival - context.requests[0].arrival : 0;
  const lines = [
    `pdspec run: ${context.mode}, policy ${context.policy}, profile ${context.profile.name} (cost-model executor)`,
    `  KV pool: ${r.header.gpus > 1 ? `${r.header.gpus} × ` : ''}${r.header.blocks} blocks × ${r.header.blockSize} tokens; allocator ${r.header.allocator}; split ${r.header.split.prefill}/${r.header.split.decode} at start`,
    `workload: ${context.workload}, ${context.requests.length} requests arriving over ${fmt(span, 1)} s`,
    `requests: ${m.requests.finished} finished, ${m.requests.aborted} aborted, ${m.requests.rejected} rejected (too long for the pool)${m.requests.live ? `, ${m.requests.live} never ended` : ''}`,
    `latency (seconds)   mean      p50      p90      p99`,
    row('TTFT', m.ttft, 3),
    row('TPOT', m.tpot, 4),
    row('E2E', m.e2e, 3),
    `SLO (TTFT ≤ ${m.slo.ttft} s and TPOT ≤ ${m.slo.tpot} s): ${fmt(m.sloAttainment * 100, 2)} % attained; goodput ${fmt(m.goodput, 2)} req/s`,
    `throughput: ${fmt(m.throughput.requestsPerSecond, 2)} req/s, ${fmt(m.throughput.tokensPerSecond, 0)} output tokens/s; ${m.preemptions} preemption(s)`,
    `KV occupancy: mean ${fmt(m.kvOccupancy.mean * 100, 1)} %, peak ${fmt(m.kvOccupancy.peak * 100, 1)} %`,
  ];
  const splits = m.splitTimeline.map((s) => `${s.prefill}/${s.decode}@${fmt(s.t, 1)}s`);
  lines.push(`split: ${r.resizes} resize(s)${splits.length > 1 ? `: ${splits.slice(0, 8).join(' → ')}${splits.length > 8 ? ` → … (${splits.length} in all)` : ''}` : ''}`);
  if (r.stalled.length > 0) {
    lines.push(`stalled: ${r.stalled.length} request(s) still live when nothing could move them: ${r.stalled.slice(0, 5).join(', ')}${r.stalled.length > 5 ? ', …' : ''}`);
  }
  if (r.ignoredSplitDecisions > 0) lines.push(`  ${r.ignoredSplitDecisions} split decision(s) not applied (during another resize, or no split in the ${context.mode} mode)`);
  lines.push(`simulated ${fmt(r.endTime, 1)} s in ${fmt(context.wall, 2)} s of wall time (${fmt(r.endTime / context.wall, 0)}× real time, ${r.events} events)`);
  if (context.trace) lines.push(`trace: ${context.trace}`);
  return lines.join('\n');
}

export const run: Command = {
  name: 'run',
  summary: [
    'Serves a workload with the engine in virtual time (the cost-model simulator) and reports TTFT, TPOT,',
    'end-to-end latency, SLO attainment and goodput. --trace-out writes the run as a trace (format v1) that',
    '`pdspec conform --quiescent` replays through the spec. --fault NAME turns on a bug-zoo fault switch of the',
    `engine (${FAULT_NAMES.join(', ')}), whose trace conform then rejects.`,
    'Exit 0: the run completed; 1: the policy faulted; 2: bad input.',
  ].join('\n'),
  usage,
  async run(args) {
    const { values: v, positionals } = parseOptions(args, options, usage);
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    if (v.workload === undefined) throw new UsageError(`--workload is required (${WORKLOAD_NAMES.join(', ')}, or a CSV/JSONL file)\nusage: ${usage}`);
    const mode = (v.mode ?? 'semi-pd') as Mode;
    if (!MODES.includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}, got '${v.mode}'`);
    if (v.executor !== undefined && v.executor !== 'cost-model') {
      throw new UsageError(`--executor '${v.executor}' is not available to run: only cost-model (virtual time) is`);
    }
    const seed = intOption(v.seed, 'seed', 0);
    const slo = parseSlo(v.slo);
    const blockSize = intOption(v['block-size'], 'block-size', 16, 1);
    let profile: Profile;
    try {
      profile = loadProfile(v.profile ?? DEFAULT_PROFILE);
    } catch (err) {
      if (err instanceof ProfileError) throw new UsageError(err.message);
      throw err;
    }
    const blocks = intOption(v.blocks, 'blocks', defaultBlocks(profile, blockSize), 1);
    if (v['no-chunking'] && v.chunk !== undefined) throw new UsageError('--chunk and --no-chunking contradict each other');
    const chunk = v.chunk === undefined ? undefined : intOption(v.chunk, 'chunk', 0, 1);
    const faults = parseFaults(v.fault);

    let requests: WorkloadRequest[];
    try {
      requests = buildWorkload({
        workload: v.workload,
        rate: positiveNumber(v.rate, 'rate'),
        duration: positiveNumber(v.duration, 'duration'),
        requests: v.requests === undefined ? undefined : intOption(v.requests, 'requests', 0, 1),
        promptLen: v['prompt-len'],
        outputLen: v['output-len'],
        cv: positiveNumber(v.cv, 'cv'),
        abortFraction: v['abort-fraction'] === undefined ? undefined : numberOption(v['abort-fraction'], 'abort-fraction', 0),
        abortAfter: positiveNumber(v['abort-after'], 'abort-after'),
        seed,
      });
    } catch (err) {
      if (err instanceof WorkloadError) throw new UsageError(err.message);
      throw err;
    }
    if (requests.length === 0) throw new UsageError(`the workload has no requests (check --duration and --requests)`);

    const policyName = v.policy ?? 'static';
    const policy = await openPolicy(policyName, parsePolicyOptions(v['policy-option']), profile);
    const sink = v['trace-out'] === undefined ? null : new JsonlFileSink(v['trace-out']);
    let engine: Engine;
    try {
      engine = new Engine({
        mode,
        workload: requests,
        profile,
        blocks,
        blockSize,
        split: parseSplit(v.split),
        allocator: v.allocator as 'lock' | 'decode-owned' | undefined,
        prefillChunk: mode === 'unified' ? undefined : chunk,
        unifiedChunk: mode === 'unified' ? (v['no-chunking'] ? 0 : chunk) : undefined,
        maxBatch: v['max-batch'] === undefined ? undefined : intOption(v['max-batch'], 'max-batch', 0, 1),
        policy,
        slo,
        seed,
        trace: sink,
        faults,
      });
    } catch (err) {
      sink?.close();
      await policy.close?.();
      if (err instanceof EngineConfigError) throw new UsageError(err.message);
      throw err;
    }

    // Progress on a terminal only: plain output when piped or under CI.
    const interactive = process.stderr.isTTY === true && !process.env.CI;
    let lastDraw = 0;
    const started = performance.now();
    let result: RunResult;
    try {
      result = engine.runToCompletion({
        progressEvery: 50_000,
        onProgress: interactive
          ? (p) => {
              const now = performance.now();
              if (now - lastDraw < 100) return;
              lastDraw = now;
              process.stderr.write(`\r  simulated ${p.time.toFixed(1)} s · ${p.ended}/${p.total} requests ended · ${p.events} events `);
            }
          : undefined,
      });
    } catch (err) {
      sink?.close();
      if (interactive) process.stderr.write('\r\x1b[K');
      const name = (err as Error).name;
      if (name === 'PolicyFault' || err instanceof InvalidDecisionError) {
        console.error(`pdspec run: ${(err as Error).message}`);
        return EXIT.violated;
      }
      throw err;
    } finally {
      await policy.close?.();
    }
    const wall = (performance.now() - started) / 1000;
    if (interactive) process.stderr.write('\r\x1b[K');

    if (v.json) {
      console.log(
        JSON.stringify({
          mode,
          policy: result.policy,
          profile: profile.name,
          executor: 'cost-model',
          workload: v.workload,
          seed,
          header: result.header,
          metrics: result.metrics,
          resizes: result.resizes,
          stalled: result.stalled,
          faults: Object.keys(faults),
          ignoredSplitDecisions: result.ignoredSplitDecisions,
          events: result.events,
          simulatedSeconds: result.endTime,
          wallSeconds: wall,
          trace: v['trace-out'] ?? null,
        }),
      );
    } else {
      console.log(summaryText(result, { mode, policy: result.policy ?? policyName, profile, workload: v.workload, requests, wall, trace: v['trace-out'] }));
    }
    return EXIT.holds;
  },
};
