// `pdspec run`: serves a workload with the engine in virtual time (the cost-model simulator) and reports
// latency, SLO attainment and goodput; optionally writes the run's trace (format v1; v2 with prefix caching; v3
// with speculative decoding) for `pdspec conform`.
// With --executor cpu|webgpu every step also runs on a llama2.c model (engine/executors/model-adapter.ts),
// so the requests get real tokens; time stays virtual (the cost model's).
import { DRAFTERS, Engine, EngineConfigError, InvalidDecisionError, MODES, type EngineOptions, type Mode, type PolicyHandle, type RunResult, type SpeculativeOptions } from '../../engine/engine.ts';
import { CheckpointError, loadCheckpoint, type ModelWeights } from '../../engine/model/checkpoint.ts';
import { STORIES260K_PATH } from '../../engine/model/shipped.ts';
import { DISAGGREGATED_UNSUPPORTED, modelFitError, ModelStepExecutor } from '../../engine/executors/model-adapter.ts';
import { ExecutorInputError, type ModelExecutor } from '../../engine/executors/model-executor.ts';
import { ExecutorError } from '../../engine/executors/step-executor.ts';
import type { Distribution } from '../../engine/metrics.ts';
import { CAD_FAULT_NAMES, FAULT_NAMES, type EngineFaults } from '../../engine/faults/index.ts';
import { defaultBlocks, DEFAULT_PROFILE, loadProfile, ProfileError, type Profile } from '../../engine/profile.ts';
import { JsonlFileSink } from '../../engine/trace-sink.ts';
import { buildWorkload, WORKLOAD_NAMES, WorkloadError, type WorkloadRequest } from '../../engine/workloads/index.ts';
import type { PolicyHandle as LoadedPolicy } from '../../engine/policies/index.ts';
import { detailOf, ResizeSink } from '../../properties/sweep.ts';
import type { CheckResult, ReportData, RunDetail } from '../../properties/report-data.ts';
import { ReportDir } from '../report/report-dir.ts';
import { checkOutputFile, EXIT, intOption, numberOption, parseOptions, sloOption, UsageError, type Command } from '../common.ts';

const EXECUTORS = ['cost-model', 'cpu', 'webgpu'] as const;
type ExecutorKind = (typeof EXECUTORS)[number];
/** Model runs by default: this many synthetic requests, lengths up to this (well within stories260K's 512). */
const MODEL_REQUESTS = 16;
const MODEL_MAX_LEN = 64;
/** Model runs by default: KV room for this many sequences of the model's whole context. */
const MODEL_POOL_SEQUENCES = 8;

const usage = [
  'pdspec run --workload azure-conv|azure-code|poisson|bursty|shared-prefix|FILE [--rate R] [--duration S] [--requests N]',
  '           [--prompt-len DIST] [--output-len DIST] [--cv C] [--abort-fraction F] [--abort-after S]',
  '           [--policy NAME|FILE] [--policy-option KEY=VALUE ...] [--mode semi-pd|nexus|disaggregated|unified]',
  '           [--split P:D] [--allocator lock|decode-owned] [--executor cost-model|cpu|webgpu] [--model FILE]',
  '           [--profile NAME|FILE] [--slo TTFT,TPOT] [--blocks B] [--block-size T] [--chunk N] [--no-chunking]',
  '           [--max-batch N] [--async-scheduling] [--prefix-caching [--prefix-cache hash|radix]] [--seed N] [--trace-out FILE|-] [--json]',
  '           [--outputs] [--fault NAME ...] [--report DIR]',
  '           [--speculative ngram|oracle [--draft-k K] [--ngram MIN:MAX] [--acceptance P] [--free-rejected]]',
  '           [--sliding-window W] [--state-slots S] [--preempt-prefilling]',
  '           [--attention-servers N [--attention-buffers B] [--attention-shards S] [--offload prefill|all] [--lose-server-at STEP]]',
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
  model: { type: 'string' },
  outputs: { type: 'boolean' },
  profile: { type: 'string' },
  slo: { type: 'string' },
  blocks: { type: 'string' },
  'block-size': { type: 'string' },
  chunk: { type: 'string' },
  'no-chunking': { type: 'boolean' },
  'async-scheduling': { type: 'boolean' },
  'prefix-caching': { type: 'boolean' },
  'prefix-cache': { type: 'string' },
  'max-batch': { type: 'string' },
  seed: { type: 'string' },
  'trace-out': { type: 'string' },
  json: { type: 'boolean' },
  fault: { type: 'string', multiple: true },
  report: { type: 'string' },
  speculative: { type: 'string' },
  'draft-k': { type: 'string' },
  ngram: { type: 'string' },
  acceptance: { type: 'string' },
  'free-rejected': { type: 'boolean' },
  'sliding-window': { type: 'string' },
  'state-slots': { type: 'string' },
  'preempt-prefilling': { type: 'boolean' },
  'attention-servers': { type: 'string' },
  'attention-buffers': { type: 'string' },
  'attention-shards': { type: 'string' },
  offload: { type: 'string' },
  'lose-server-at': { type: 'string' },
} as const;

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = numberOption(value, name, Number.NaN);
  if (!(n > 0)) throw new UsageError(`--${name} must be a number > 0, got '${value}'`);
  return n;
}

function parseSplit(text: string | undefined): { prefill: number; decode: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)[:,/](\d+)$/.exec(text);
  if (!m) throw new UsageError(`--split must be PREFILL:DECODE in percent (e.g. 80:100), got '${text}'`);
  return { prefill: Number(m[1]), decode: Number(m[2]) };
}

/** Bug-zoo fault switches by name (engine/faults/), for showing that `conform` catches them. */
function parseFaults(list: string[] | undefined): EngineFaults {
  const faults: EngineFaults = {};
  for (const name of list ?? []) {
    if (![...FAULT_NAMES, ...CAD_FAULT_NAMES].includes(name as never)) throw new UsageError(`unknown --fault '${name}' (known: ${[...FAULT_NAMES, ...CAD_FAULT_NAMES].join(', ')})`);
    faults[name as keyof EngineFaults] = true;
  }
  return faults;
}

/** --attention-servers and its settings, as EngineOptions.attentionServers (nothing when off). */
function attentionServersOption(v: { 'attention-servers'?: string; 'attention-buffers'?: string; 'attention-shards'?: string; offload?: string; 'lose-server-at'?: string }): { attentionServers?: EngineOptions['attentionServers'] } {
  if (v['attention-servers'] === undefined) {
    for (const flag of ['attention-buffers', 'attention-shards', 'offload', 'lose-server-at'] as const) if (v[flag] !== undefined) throw new UsageError(`--${flag} needs --attention-servers N`);
    return {};
  }
  if (v.offload !== undefined && v.offload !== 'prefill' && v.offload !== 'all') throw new UsageError(`--offload must be prefill or all, got '${v.offload}'`);
  return {
    attentionServers: {
      servers: intOption(v['attention-servers'], 'attention-servers', 1, 1),
      ...(v['attention-buffers'] !== undefined ? { buffers: intOption(v['attention-buffers'], 'attention-buffers', 2, 1) } : {}),
      ...(v['attention-shards'] !== undefined ? { shards: intOption(v['attention-shards'], 'attention-shards', 2, 1) } : {}),
      ...(v.offload !== undefined ? { offload: v.offload as 'prefill' | 'all' } : {}),
      ...(v['lose-server-at'] !== undefined ? { lossAtStep: intOption(v['lose-server-at'], 'lose-server-at', 0, 1) } : {}),
    },
  };
}

/** --speculative and its settings, as EngineOptions.speculative (undefined when off). */
function parseSpeculative(v: { speculative?: string; 'draft-k'?: string; ngram?: string; acceptance?: string; 'free-rejected'?: boolean }): SpeculativeOptions | undefined {
  const drafter = v.speculative as SpeculativeOptions['drafter'] | undefined;
  if (drafter === undefined) {
    for (const flag of ['draft-k', 'ngram', 'acceptance', 'free-rejected'] as const) if (v[flag] !== undefined) throw new UsageError(`--${flag} needs --speculative ngram|oracle`);
    return undefined;
  }
  const free = v['free-rejected'] === true ? { freeRejected: true } : {};
  if (!(DRAFTERS as readonly string[]).includes(drafter)) throw new UsageError(`--speculative must be one of ${DRAFTERS.join(', ')}, got '${drafter}'`);
  const k = v['draft-k'] === undefined ? undefined : intOption(v['draft-k'], 'draft-k', 3, 1);
  if (drafter === 'ngram') {
    if (v.acceptance !== undefined) throw new UsageError('--acceptance is the oracle drafter’s (--speculative oracle); the ngram drafter’s drafts are right when the model agrees');
    let range: { min?: number; max?: number } = {};
    if (v.ngram !== undefined) {
      const m = /^(\d+):(\d+)$/.exec(v.ngram);
      if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new UsageError(`--ngram must be MIN:MAX with 1 ≤ MIN ≤ MAX (e.g. 1:3), got '${v.ngram}'`);
      range = { min: Number(m[1]), max: Number(m[2]) };
    }
    return { drafter, ...(k !== undefined ? { k } : {}), ...range, ...free };
  }
  if (v.ngram !== undefined) throw new UsageError('--ngram is the ngram drafter’s (--speculative ngram)');
  if (v.acceptance === undefined) throw new UsageError('--speculative oracle needs --acceptance P, the chance in [0, 1] that a draft is the token the cost model produces');
  const acceptance = numberOption(v.acceptance, 'acceptance', Number.NaN);
  if (!(acceptance >= 0 && acceptance <= 1)) throw new UsageError(`--acceptance must be a probability in [0, 1], got '${v.acceptance}'`);
  return { drafter, ...(k !== undefined ? { k } : {}), acceptance, ...free };
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
async function openPolicy(name: string, policyOptions: Record<string, unknown>, profile: Profile): Promise<LoadedPolicy> {
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

interface SummaryContext {
  mode: Mode;
  policy: string;
  profile: Profile;
  workload: string;
  requests: WorkloadRequest[];
  wall: number;
  trace?: string;
  /** e.g. "cost-model executor", "cpu executor on stories260K.bin". */
  executor: string;
  /** Model runs: a line on the tokens computed. */
  tokens?: string;
  /** --outputs: each request's output ids. */
  outputs?: Map<string, number[]>;
  /** Speculative decoding: its drafter and settings, in words. */
  speculative?: string;
}

function summaryText(r: RunResult, context: SummaryContext): string {
  const m = r.metrics;
  const span = context.requests.length ? context.requests[context.requests.length - 1].arrival - context.requests[0].arrival : 0;
  const lines = [
    `pdspec run: ${context.mode}, policy ${context.policy}, profile ${context.profile.name} (${context.executor})`,
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
  const sh = r.sharing;
  if (r.header.prefixCache !== undefined || r.header.version === 2)
    lines.push(`shared KV (${r.header.prefixCache ?? 'hash'} prefix cache): ${sh.hits} block(s) hit (${sh.hitTokens} tokens not recomputed), ${sh.inserts} cached, ${sh.evictions} evicted; ${sh.forks} fork(s), ${sh.copies} copy-on-write`);
  const sp = r.speculative;
  if (sp) {
    const rate = sp.drafted > 0 ? ` (${fmt((100 * sp.accepted) / sp.drafted, 1)} %)` : '';
    lines.push(
      `speculative decoding (${context.speculative}): ${sp.verifySteps} verify step(s) with ${sp.verifies} verify item(s), ${sp.drafted} draft token(s) proposed, ${sp.accepted} accepted${rate}, ${sp.drafted - sp.accepted} rolled back; ${sp.plainDecodes} plain decode item(s)`,
    );
  }
  const splits = m.splitTimeline.map((s) => `${s.prefill}/${s.decode}@${fmt(s.t, 1)}s`);
  lines.push(`split: ${r.resizes} resize(s)${splits.length > 1 ? `: ${splits.slice(0, 8).join(' → ')}${splits.length > 8 ? ` → … (${splits.length} in all)` : ''}` : ''}`);
  if (r.stalled.length > 0) {
    lines.push(`stalled: ${r.stalled.length} request(s) still live when nothing could move them: ${r.stalled.slice(0, 5).join(', ')}${r.stalled.length > 5 ? ', …' : ''}`);
  }
  if (r.ignoredSplitDecisions > 0) lines.push(`  ${r.ignoredSplitDecisions} split decision(s) not applied (during another resize, or no split in the ${context.mode} mode)`);
  lines.push(`simulated ${fmt(r.endTime, 1)} s in ${fmt(context.wall, 2)} s of wall time (${fmt(r.endTime / context.wall, 0)}× real time, ${r.events} events)`);
  if (context.tokens) lines.push(context.tokens);
  if (context.trace) lines.push(`trace: ${context.trace === '-' ? 'standard output' : context.trace}`);
  if (context.outputs) {
    lines.push('outputs (token ids):');
    for (const [id, ids] of context.outputs) lines.push(`  ${id}: ${ids.join(' ')}`);
  }
  return lines.join('\n');
}

export const run: Command = {
  name: 'run',
  summary: [
    'Serves a workload with the engine in virtual time (the cost-model simulator) and reports TTFT, TPOT,',
    'end-to-end latency, SLO attainment and goodput. --trace-out writes the run as a trace (format v1; v2 with prefix caching;',
    'v3 with speculative decoding, a sliding window, state slots or preemption while prefilling) that',
    '`pdspec conform --quiescent` replays through the spec (--trace-out - writes it to standard output, the',
    'summary then to standard error: `pdspec run ... --trace-out - | pdspec conform -`). --fault NAME turns on a bug-zoo fault switch of the',
    `engine (${FAULT_NAMES.join(', ')}; with --attention-servers: ${CAD_FAULT_NAMES.join(', ')}), whose trace conform then rejects.`,
    '--executor cpu|webgpu also runs every step on a llama2.c model (--model FILE, default the shipped',
    'stories260K; semi-pd, nexus and unified modes): real greedy tokens (--outputs lists them), virtual time',
    'still from the cost model; the default workload is then 16 short Poisson requests.',
    '--report DIR writes the run into the report of `pdspec check` (latency distributions, the split over time',
    'with its resizes, KV occupancy).',
    '--speculative ngram|oracle turns on speculative decoding: each decode step verifies up to --draft-k drafts (default',
    '3) and keeps the prefix greedy decoding would have chosen, so the tokens are those of plain greedy decoding and only',
    'the steps change. ngram: vLLM\'s n-gram proposer on the request\'s own tokens (--ngram MIN:MAX, default 1:3);',
    'oracle (cost model only): each draft is the cost model\'s token with probability --acceptance P. --free-rejected',
    'gives the blocks past the accepted positions back after each verify (SGLang), instead of rewriting them (vLLM).',
    'A hybrid model (cost model only; trace v3): --sliding-window W gives it global and windowed layers, two layer groups',
    '(full, swa) with their own block tables, and a request frees its swa blocks once they leave the window of W',
    'positions; --state-slots S gives each GPU S recurrent-state slots (Mamba layers), one per admitted request.',
    '--preempt-prefilling (unified mode) lets a worker short of blocks retract a request still prefilling, as vLLM v1 does.',
    '--attention-servers N (unified mode, cost model; trace v4) runs core attention on N attention servers (DistCA):',
    'each item\'s query positions in --attention-shards shards (default 2), balanced over the servers, in',
    '--attention-buffers buffers each (default 2: ping-pong); --offload all sends decode attention too (default',
    'prefill: prompt chunks only); --lose-server-at STEP loses server A1 during that step (its tasks go elsewhere).',
    'Exit 0: the run completed; 2: bad input, including a policy that faulted (threw, returned NaN or an',
    'out-of-range split, or hung; the message names the observation).',
  ].join('\n'),
  usage,
  async run(args) {
    const { values: v, positionals } = parseOptions(args, options, usage);
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    const executorKind = (v.executor ?? 'cost-model') as ExecutorKind;
    if (!EXECUTORS.includes(executorKind)) throw new UsageError(`--executor must be one of ${EXECUTORS.join(', ')}, got '${v.executor}'`);
    const onModel = executorKind !== 'cost-model';
    if (v.model !== undefined && !onModel) throw new UsageError('--model needs --executor cpu or webgpu (the cost model computes no tokens)');
    // A model run defaults to a short synthetic workload that fits the model's context.
    const workloadName = v.workload ?? (onModel ? 'poisson' : undefined);
    if (workloadName === undefined) throw new UsageError(`--workload is required (${WORKLOAD_NAMES.join(', ')}, or a CSV/JSONL file)\nusage: ${usage}`);
    const mode = (v.mode ?? 'semi-pd') as Mode;
    if (!MODES.includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}, got '${v.mode}'`);
    if (onModel && mode === 'disaggregated') throw new UsageError(DISAGGREGATED_UNSUPPORTED);
    const seed = intOption(v.seed, 'seed', 0);
    const slo = sloOption(v.slo, { ttft: 2, tpot: 0.1 });
    const blockSize = intOption(v['block-size'], 'block-size', 16, 1);
    let profile: Profile;
    try {
      profile = loadProfile(v.profile ?? DEFAULT_PROFILE);
    } catch (err) {
      if (err instanceof ProfileError) throw new UsageError(err.message);
      throw err;
    }
    const modelPath = v.model ?? STORIES260K_PATH;
    let weights: ModelWeights | null = null;
    if (onModel) {
      try {
        weights = loadCheckpoint(modelPath);
      } catch (err) {
        if (err instanceof CheckpointError) throw new UsageError(err.message);
        throw err;
      }
    }
    const seqLen = weights?.config.seqLen ?? 0;
    const modelName = modelPath.split(/[\\/]/).pop()!;
    const blocks = intOption(v.blocks, 'blocks', weights ? MODEL_POOL_SEQUENCES * Math.ceil(seqLen / blockSize) : defaultBlocks(profile, blockSize), 1);
    if (v['no-chunking'] && v.chunk !== undefined) throw new UsageError('--chunk and --no-chunking contradict each other');
    const chunk = v.chunk === undefined ? undefined : intOption(v.chunk, 'chunk', 0, 1);
    const faults = parseFaults(v.fault);
    const speculative = parseSpeculative(v);

    let requests: WorkloadRequest[];
    const synthetic = workloadName === 'poisson' || workloadName === 'bursty';
    const modelLen = `uniform:1:${Math.max(1, Math.min(MODEL_MAX_LEN, Math.floor(seqLen / 2)))}`;
    const duration = positiveNumber(v.duration, 'duration');
    try {
      requests = buildWorkload({
        workload: workloadName,
        rate: positiveNumber(v.rate, 'rate'),
        duration,
        requests: v.requests === undefined ? (onModel && synthetic && duration === undefined ? MODEL_REQUESTS : undefined) : intOption(v.requests, 'requests', 0, 1),
        promptLen: v['prompt-len'] ?? (onModel && synthetic ? modelLen : undefined),
        outputLen: v['output-len'] ?? (onModel && synthetic ? modelLen : undefined),
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
    if (weights) {
      for (const r of requests) {
        const misfit = modelFitError(r, seqLen, modelName);
        const hint = synthetic
          ? 'use shorter --prompt-len/--output-len'
          : workloadName === 'shared-prefix'
            ? "the shared-prefix workload's system prompts and conversations are sized for real models (docs/workload-format.md); write a workload file with shorter prompts"
            : 'shorten it in the workload';
        if (misfit) throw new UsageError(`${misfit}; ${hint}`);
      }
    }
    if (v['trace-out'] !== undefined && v['trace-out'] !== '-') checkOutputFile(v['trace-out'], '--trace-out');
    if (v.report !== undefined) ReportDir.check(v.report);
    const policyName = v.policy ?? 'static';
    const policy = await openPolicy(policyName, parsePolicyOptions(v['policy-option']), profile);
    let model: ModelExecutor | null = null;
    try {
      model = weights ? await openModel(executorKind as 'cpu' | 'webgpu', weights, { numBlocks: blocks, blockSize }) : null;
    } catch (err) {
      await policy.close?.();
      throw err;
    }
    try {
      return await serve(model);
    } finally {
      model?.destroy();
    }

    async function serve(model: ModelExecutor | null): Promise<number> {
      const adapter = model ? new ModelStepExecutor(model, profile) : null;
      const traceSink = v['trace-out'] === undefined ? null : new JsonlFileSink(v['trace-out']);
      // With the trace on standard output (--trace-out -), everything else goes to standard error.
      const say = v['trace-out'] === '-' ? console.error : console.log;
      // --report needs the resizes of the run: recorded on the way to the trace file, if any.
      const resizeSink = v.report === undefined ? null : new ResizeSink(traceSink);
      const sink = resizeSink ?? traceSink;
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
          asyncScheduling: v['async-scheduling'] === true,
          prefixCaching: v['prefix-caching'] === true || v['prefix-cache'] !== undefined,
          ...(v['prefix-cache'] !== undefined ? { prefixCache: v['prefix-cache'] as 'hash' } : {}),
          executor: adapter ?? undefined,
          recordOutputs: v.outputs === true,
          ...(speculative ? { speculative } : {}),
          ...(v['sliding-window'] !== undefined ? { slidingWindow: intOption(v['sliding-window'], 'sliding-window', 0, 1) } : {}),
          ...(v['state-slots'] !== undefined ? { stateSlots: intOption(v['state-slots'], 'state-slots', 0, 1) } : {}),
          preemptPrefilling: v['preempt-prefilling'] === true,
          ...attentionServersOption(v),
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
      const runOptions = {
        // A model step takes milliseconds of wall time: report far more often than in the simulator.
        progressEvery: adapter ? 20 : 50_000,
        onProgress: interactive
          ? (p: { time: number; ended: number; total: number; events: number }) => {
              const now = performance.now();
              if (now - lastDraw < 100) return;
              lastDraw = now;
              process.stderr.write(`\r  simulated ${p.time.toFixed(1)} s · ${p.ended}/${p.total} requests ended · ${p.events} events `);
            }
          : undefined,
      };
      try {
        result = adapter ? await engine.runToCompletionAsync(runOptions) : engine.runToCompletion(runOptions);
      } catch (err) {
        sink?.close();
        if (interactive) process.stderr.write('\r\x1b[K');
        const name = (err as Error).name;
        if (name === 'PolicyFault' || err instanceof InvalidDecisionError) {
          console.error(`pdspec run: ${(err as Error).message}`);
          if (v.report !== undefined) {
            const fault: CheckResult = { check: 'policy', property: 'policy fault', family: 'bad input', status: 'error', seconds: (performance.now() - started) / 1000, detail: (err as Error).message };
            console.error(`report: ${await writeRunReport(v.report, reportInput(), fault, null)}`);
          }
          return EXIT.badInput;
        }
        // A step the model cannot run (e.g. a pool or position it cannot address) is bad input.
        if (err instanceof ExecutorError) throw new UsageError(err.message);
        throw err;
      } finally {
        await policy.close?.();
      }
      const wall = (performance.now() - started) / 1000;
      if (interactive) process.stderr.write('\r\x1b[K');

      const outputs = v.outputs ? engine.outputs() : undefined;
      const executorText = model ? `${model.name} executor on ${modelName}; virtual time from the cost model` : 'cost-model executor';
      const tokens = adapter
        ? `tokens: ${sumGenerated(result)} output tokens from ${modelName} (greedy) in ${adapter.stats.steps} model steps, ${adapter.stats.positions} positions computed`
        : undefined;
      if (v.json) {
        say(
          JSON.stringify({
            mode,
            policy: result.policy,
            profile: profile.name,
            executor: executorKind,
            model: model ? { path: modelPath, ...model.model } : null,
            workload: workloadName,
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
            modelSteps: adapter?.stats.steps ?? null,
            speculative: result.speculative,
            trace: v['trace-out'] ?? null,
            ...(outputs ? { outputs: Object.fromEntries(outputs) } : {}),
          }),
        );
      } else {
        say(
          summaryText(result, {
            mode,
            policy: result.policy ?? policyName,
            profile,
            workload: workloadName!,
            requests,
            wall,
            trace: v['trace-out'],
            executor: executorText,
            tokens,
            outputs,
            ...(speculative ? { speculative: describeSpeculative(speculative) } : {}),
          }),
        );
      }
      if (v.report !== undefined) {
        const detail = detailOf(result, resizeSink!.events, workloadName!.split(/[\\/]/).pop()!, rateOf(requests, v.rate), slo);
        const m = result.metrics;
        const runCheck: CheckResult = {
          check: 'run',
          property: 'SLO attainment',
          family: 'performance',
          status: result.stalled.length ? 'warn' : 'pass',
          seconds: wall,
          detail: result.stalled.length
            ? `${result.stalled.length} request(s) never ended: ${result.stalled.slice(0, 5).join(', ')}`
            : `${m.requests.finished} finished, ${m.requests.aborted} aborted: ${(m.sloAttainment * 100).toFixed(1)} % within TTFT ≤ ${slo.ttft} s and TPOT ≤ ${slo.tpot} s, goodput ${m.goodput.toFixed(2)} req/s, ${result.resizes} resize(s), ${m.preemptions} preemption(s)`,
        };
        const where = await writeRunReport(v.report, reportInput(), runCheck, detail);
        if (!v.json) say(`report: ${where}`);
      }
      return EXIT.holds;
    }

    function reportInput(): RunReportInput {
      return { args, seed, profile, policy, policyName, mode };
    }
  },
};

interface RunReportInput {
  args: string[];
  seed: number;
  profile: Profile;
  policy: LoadedPolicy;
  policyName: string;
  mode: Mode;
}

/** The request rate of a workload: --rate where given, else arrivals over their span. */
function rateOf(requests: WorkloadRequest[], rate: string | undefined): number {
  if (rate !== undefined) return Number(rate);
  const span = requests.length > 1 ? requests[requests.length - 1].arrival - requests[0].arrival : 0;
  return span > 0 ? Number(((requests.length - 1) / span).toFixed(2)) : requests.length;
}

/** Writes the run as a report (cli/report/): one policy, the run's check and, when it ran, its detail. */
async function writeRunReport(dir: string, o: RunReportInput, check: CheckResult, detail: RunDetail | null): Promise<string> {
  const { reportSources } = await import('../report/results.ts');
  const data: ReportData = {
    version: 1,
    command: ['pdspec run', ...o.args].join(' '),
    seed: o.seed,
    verdict: check.status === 'error' ? 'bad-input' : 'holds',
    startedAt: new Date().toISOString(),
    seconds: check.seconds,
    policies: [
      {
        name: o.policy.name === o.mode ? o.mode : `${o.policy.name} (${o.mode})`,
        source: o.policy.source ?? o.policyName,
        claimsMonotone: o.policy.claimsMonotone ?? false,
        checks: [check],
        sweeps: [],
        ...(detail ? { run: detail } : {}),
      },
    ],
    sources: reportSources(o.profile),
  };
  return (await ReportDir.open(dir).commit(data)).html;
}

/** The drafter and its settings, in words (defaults filled in as the engine does). */
function describeSpeculative(s: SpeculativeOptions): string {
  const k = s.k ?? 3;
  if (s.drafter === 'oracle') return `oracle drafter, k ${k}, acceptance ${s.acceptance}`;
  const min = s.min ?? 1;
  return `ngram drafter, k ${k}, n-grams ${min}..${s.max ?? Math.max(3, min)}`;
}

function sumGenerated(r: RunResult): number {
  return r.records.reduce((a, x) => a + x.generated, 0);
}

/** The model executor of a run: the CPU reference, or WebGPU (one line with how to get an adapter if none). */
async function openModel(kind: 'cpu' | 'webgpu', weights: ModelWeights, pool: { numBlocks: number; blockSize: number }): Promise<ModelExecutor> {
  try {
    if (kind === 'cpu') {
      const { createCpuReferenceExecutor } = await import('../../engine/executors/cpu-reference.ts');
      return createCpuReferenceExecutor(weights, pool);
    }
    const { requestAdapter, webGpu, NO_ADAPTER_HINT } = await import('../../engine/executors/webgpu/device.ts');
    if (!(await requestAdapter(webGpu()))) throw new UsageError(NO_ADAPTER_HINT);
    const { createWebGpuExecutor } = await import('../../engine/executors/webgpu/executor.ts');
    return await createWebGpuExecutor(weights, pool);
  } catch (err) {
    if (err instanceof ExecutorInputError) throw new UsageError(err.message);
    throw err;
  }
}
