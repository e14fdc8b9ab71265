// Speculative decoding with real tokens: the engine's n-gram drafter (vLLM's prompt lookup on the request's
// own tokens) on the shipped stories260K, through the model adapter, on the CPU reference and on WebGPU.
// The executors' allNext contract (the argmax after every position of an item) is checked against one
// step per prefix; then under batching, chunked prefill, preemption, resizes, aborts and shared KV, the
// speculative runs have real acceptances and rejections, every request's tokens are its plain greedy solo
// tokens, the v3 traces conform, and WebGPU gives the CPU's tokens; the bug-zoo fault Z18 shows as wrong
// tokens (and a refused trace). Last, the done-when of the change:
// `pdspec run --executor cpu|webgpu --speculative ngram --outputs` prints the tokens of the plain run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type EngineOptions, type SpeculativeOptions } from '../engine/engine.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import { ModelStepExecutor, promptTokens } from '../engine/executors/model-adapter.ts';
import type { KvPool, ModelExecutor, StepInput } from '../engine/executors/model-executor.ts';
import { NO_ADAPTER_HINT, requestAdapter, requestDevice, webGpu } from '../engine/executors/webgpu/device.ts';
import { createWebGpuExecutor } from '../engine/executors/webgpu/executor.ts';
import { loadCheckpoint } from '../engine/model/checkpoint.ts';
import { STORIES260K_PATH } from '../engine/model/shipped.ts';
import { hashString } from '../engine/random.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import { checkText, formatVerdict } from '../spec/checker.ts';
import type { TraceEvent } from '../spec/trace-format.ts';
import { cyclingPolicy, PROFILE, smallWorkload } from './engine-fixtures.ts';

const stories = loadCheckpoint(STORIES260K_PATH);
const VOCAB = stories.config.vocabSize;
const T = 4;
const POOL: KvPool = { numBlocks: 64, blockSize: T };

// ---------------------------------------------------------------------------------------------
// The reference: a request alone, straight on the executor: its prompt, then one decode step per token.

const soloCache = new WeakMap<ModelExecutor, Map<string, number[]>>();

async function solo(model: ModelExecutor, r: WorkloadRequest): Promise<number[]> {
  const key = `${r.seed}/${r.prompt}/${r.output}/${r.prefix?.id ?? ''}/${r.prefix?.length ?? 0}`;
  let cache = soloCache.get(model);
  if (!cache) soloCache.set(model, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const blockTable = Array.from({ length: Math.ceil((r.prompt + r.output) / T) }, (_, i) => i);
  const prompt = promptTokens(r.seed!, r.prompt, VOCAB);
  if (r.prefix) prompt.splice(0, r.prefix.length, ...promptTokens(hashString(r.prefix.id), r.prefix.length, VOCAB));
  let out = await model.step({ prefill: [{ req: 'solo', tokens: prompt, startPos: 0, blockTable }], decode: [], prefillShare: 0.5 });
  const tokens = [out.next.get('solo')!];
  while (tokens.length < r.output) {
    const pos = r.prompt + tokens.length - 1;
    out = await model.step({ prefill: [], decode: [{ req: 'solo', token: tokens[tokens.length - 1], pos, blockTable }], prefillShare: 0.5 });
    tokens.push(out.next.get('solo')!);
  }
  cache.set(key, tokens);
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// The executors' contract: allNext

/** An item with allNext gives, after each position, the argmax of a step that ends there; the other items are unchanged. */
async function checkAllNext(model: ModelExecutor): Promise<void> {
  const tokens = promptTokens(41, 11, VOCAB);
  const table = [0, 1, 2];
  const other = [10, 11, 12];
  const lone = [20, 21];
  // One step per prefix: the argmax after each position, recomputed from position 0 each time.
  const want: number[] = [];
  for (let n = 1; n <= tokens.length; n++) {
    const out = await model.step({ prefill: [{ req: 'p', tokens: tokens.slice(0, n), startPos: 0, blockTable: table }], decode: [], prefillShare: 0.5 });
    want.push(out.next.get('p')!);
  }
  const otherTokens = promptTokens(42, 6, VOCAB);
  const plainOther = await model.step({ prefill: [{ req: 'o', tokens: otherTokens, startPos: 0, blockTable: other }], decode: [], prefillShare: 0.5, wantLogits: true });
  // The first 4 positions as a plain chunk, then the other 7 with allNext, beside a plain chunk and a decode item.
  await model.step({ prefill: [{ req: 'p', tokens: tokens.slice(0, 4), startPos: 0, blockTable: table }], decode: [], prefillShare: 0.5 });
  await model.step({ prefill: [{ req: 'd', tokens: tokens.slice(0, 3), startPos: 0, blockTable: lone }], decode: [], prefillShare: 0.5 });
  const input: StepInput = {
    prefill: [
      { req: 'o', tokens: otherTokens, startPos: 0, blockTable: other },
      { req: 'p', tokens: tokens.slice(4), startPos: 4, blockTable: table, allNext: true },
    ],
    decode: [{ req: 'd', token: tokens[3], pos: 3, blockTable: lone }],
    prefillShare: 0.5,
    wantLogits: true,
  };
  const out = await model.step(input);
  expect(out.nextAll!.get('p')).toEqual(want.slice(4));
  expect(out.next.get('p')).toBe(want[want.length - 1]);
  expect([...out.nextAll!.keys()]).toEqual(['p']);
  expect(out.next.get('o')).toBe(plainOther.next.get('o'));
  expect(out.logits!.get('o')).toEqual(plainOther.logits!.get('o'));
  expect(out.next.get('d')).toBe(want[3]);
  // The logits of an allNext item are those after its last position.
  const lastOnly = await model.step({ prefill: [{ req: 'p', tokens: tokens.slice(4), startPos: 4, blockTable: table }], decode: [], prefillShare: 0.5, wantLogits: true });
  expect(out.logits!.get('p')).toEqual(lastOnly.logits!.get('p'));
  await expect(model.step({ prefill: [{ req: 'x', tokens: [1], startPos: 0, blockTable: [0], allNext: 'yes' as never }], decode: [], prefillShare: 0.5 })).rejects.toThrow(/allNext must be true or false/);
}

// ---------------------------------------------------------------------------------------------
// The engine, speculative, on a model

interface ModelRun {
  options: Omit<EngineOptions, 'profile'>;
  outputs: Map<string, number[]>;
  text: string;
  events: TraceEvent[];
  result: Awaited<ReturnType<Engine['runToCompletionAsync']>>;
  adapter: ModelStepExecutor;
}

type RunOptions = Omit<EngineOptions, 'executor' | 'trace' | 'profile' | 'recordOutputs' | 'blockSize'>;

async function runOnModel(model: ModelExecutor, options: RunOptions): Promise<ModelRun> {
  const adapter = new ModelStepExecutor(model, PROFILE);
  adapter.checkPool(options.blocks, T);
  const sink = new MemorySink();
  const full = { ...options, blockSize: T, executor: adapter, recordOutputs: true, trace: sink };
  const engine = new Engine({ ...full, profile: PROFILE });
  const result = await engine.runToCompletionAsync();
  return { options: full, outputs: engine.outputs(), text: sink.text(), events: sink.events, result, adapter };
}

/** Each request's tokens are its solo tokens (a prefix of them if it was aborted or rejected). */
async function expectSoloTokens(model: ModelExecutor, workload: readonly WorkloadRequest[], run: ModelRun): Promise<void> {
  const outcomes = new Map(run.result.records.map((r) => [r.id, r.outcome]));
  const samples = workload.flatMap((r) => Array.from({ length: (r.n ?? 1) - 1 }, (_, k) => ({ ...r, id: `${r.id}#${k + 1}` })));
  for (const r of [...workload, ...samples]) {
    if (!run.outputs.has(r.id) && samples.includes(r)) continue;
    const got = run.outputs.get(r.id) ?? [];
    const want = await solo(model, r);
    if (outcomes.get(r.id) === 'finished') expect(got, `request ${r.id}`).toEqual(want);
    else expect(got, `request ${r.id} (${outcomes.get(r.id)})`).toEqual(want.slice(0, got.length));
  }
}

const workload: WorkloadRequest[] = smallWorkload(11, 12, { rate: 40, prompt: 'uniform:1:40', output: 'uniform:10:60', abortFraction: 0.2, abortAfter: 0.25 }).map((r, i) => ({ ...r, seed: 7000 + i }));
const sharedWorkload: WorkloadRequest[] = smallWorkload(21, 10, { rate: 60, prompt: 'uniform:10:30', output: 'uniform:4:30' }).map((r, i) => ({
  ...r,
  seed: 5000 + i,
  ...(i % 4 !== 3 ? { prefix: { id: i % 2 === 0 ? 'sysA' : 'sysB', length: Math.min(r.prompt, i % 2 === 0 ? 9 : 13) } } : {}),
  ...(i % 3 === 1 ? { n: 2 } : {}),
}));
const ngram: SpeculativeOptions = { drafter: 'ngram' };

// A function: the cycling policy keeps state, so each run needs its own.
const scenarios = (): { name: string; work: WorkloadRequest[]; options: RunOptions }[] => [
  { name: 'unified, SplitFuse budget 8, a small pool', work: workload, options: { mode: 'unified', workload, blocks: 30, unifiedChunk: 8, speculative: ngram } },
  { name: 'semi-PD, resizes', work: workload, options: { mode: 'semi-pd', workload, blocks: 36, prefillChunk: 8, policy: cyclingPolicy('semi-pd', 0.02), speculative: ngram } },
  { name: 'Nexus, n-grams 2..3, k 4', work: workload, options: { mode: 'nexus', workload, blocks: 36, prefillChunk: 8, speculative: { drafter: 'ngram', min: 2, max: 3, k: 4 } } },
  { name: 'unified, shared KV (v3 with prefix hits, forks, copy-on-write)', work: sharedWorkload, options: { mode: 'unified', workload: sharedWorkload, blocks: 24, unifiedChunk: 8, prefixCaching: true, speculative: ngram } },
];

/** What the drafts did in a run's trace: verifies, accepted drafts, verifies with a rejection, and all accepted (a bonus). */
function verifyStats(events: readonly TraceEvent[]): { verifies: number; accepted: number; rejecting: number; bonus: number } {
  const drafts = new Map<string, Record<string, number>>();
  const s = { verifies: 0, accepted: 0, rejecting: 0, bonus: 0 };
  for (const e of events) {
    if (e.ev === 'step_begin') drafts.set(`${e.worker}/${e.step}`, Object.fromEntries(e.batch.filter((it) => it.draft).map((it) => [it.req, it.draft!])));
    if (e.ev !== 'step_end' || !e.accepted) continue;
    for (const [req, a] of Object.entries(e.accepted)) {
      const k = drafts.get(`${e.worker}/${e.step}`)![req];
      s.verifies++;
      s.accepted += a;
      if (a < k) s.rejecting++;
      else s.bonus++;
    }
  }
  return s;
}

async function checkScenarios(model: ModelExecutor): Promise<Map<string, ModelRun>> {
  const runs = new Map<string, ModelRun>();
  let preemptions = 0;
  for (const s of scenarios()) {
    const run = await runOnModel(model, s.options);
    const verdict = checkText(run.text, { quiescent: true });
    expect(verdict.verdict, `${s.name}\n${formatVerdict('trace', verdict)}`).toBe('conforms');
    expect(run.result.header.version, s.name).toBe(3);
    await expectSoloTokens(model, s.work, run);
    const v = verifyStats(run.events);
    expect(v.verifies, s.name).toBe(run.result.speculative!.verifies);
    expect(v.accepted, s.name).toBe(run.result.speculative!.accepted);
    expect(v.rejecting, `${s.name}: verifies with a rejection`).toBeGreaterThan(0);
    expect(v.accepted, `${s.name}: accepted drafts`).toBeGreaterThan(0);
    // One model step per engine step, a verify run as one item whose every position's argmax is read.
    expect(run.adapter.stats.steps).toBe(run.events.filter((e) => e.ev === 'step_begin').length);
    expect(run.adapter.stats.verifyItems).toBe(v.verifies);
    preemptions += run.result.metrics.preemptions;
    runs.set(s.name, run);
  }
  expect(preemptions, 'the small pools preempt').toBeGreaterThan(0);
  const all = [...runs.values()].map((r) => verifyStats(r.events));
  expect(all.reduce((a, s) => a + s.bonus, 0), 'verifies that accepted every draft (a bonus token)').toBeGreaterThan(0);
  return runs;
}

// ---------------------------------------------------------------------------------------------

const cpu = createCpuReferenceExecutor(stories, POOL);
afterAll(() => cpu.destroy());
let cpuRuns: Promise<Map<string, ModelRun>> | null = null;
const cpuScenarios = () => (cpuRuns ??= checkScenarios(cpu));

describe('speculative decoding on the CPU reference (stories260K)', () => {
  it('allNext: the argmax after every position of an item, as one step per prefix gives it', async () => {
    await checkAllNext(cpu);
  });

  it('n-gram drafts with acceptances and rejections: every request gets its plain greedy solo tokens, the v3 traces conform', async () => {
    const runs = await cpuScenarios();
    // The same run without drafts gives the same tokens to every request that finished in both (an abort
    // lands after other tokens when the steps differ).
    const first = scenarios()[0];
    const plain = await runOnModel(cpu, { ...first.options, speculative: null });
    const spec = runs.get(first.name)!;
    const finished = (r: ModelRun) => new Set(r.result.records.filter((x) => x.outcome === 'finished').map((x) => x.id));
    const both = [...finished(plain)].filter((id) => finished(spec).has(id));
    expect(both.length).toBeGreaterThan(5);
    for (const id of both) expect(spec.outputs.get(id), id).toEqual(plain.outputs.get(id));
    expect(plain.result.header.version).toBe(1);
  });
});

describe('a speculative-decoding bug on real tokens', () => {
  it('Z18 (the bonus position written with the last draft) shows as wrong tokens, and the trace is refused by KvMatchesOutput', async () => {
    const options: RunOptions = { mode: 'unified', workload: workload.map(({ abortAt: _, ...r }) => r), blocks: 60, unifiedChunk: 8, speculative: ngram };
    const faulty = await runOnModel(cpu, { ...options, faults: { bonusKvMismatch: true } });
    let wrong = 0;
    for (const r of options.workload) if (faulty.outputs.get(r.id)!.join() !== (await solo(cpu, r)).join()) wrong++;
    expect(wrong).toBeGreaterThan(0);
    const verdict = checkText(faulty.text, { quiescent: true });
    expect(verdict.verdict === 'violation' && verdict.finding.rule).toBe('KvMatchesOutput');
  });
});

describe('speculative decoding on WebGPU (stories260K)', () => {
  let device: GPUDevice | null = null;
  let gpu: ModelExecutor | null = null;
  let missing = NO_ADAPTER_HINT;
  beforeAll(async () => {
    const adapter = await requestAdapter(webGpu());
    if (!adapter) {
      console.warn(`[model-speculative] WebGPU tests skipped: ${NO_ADAPTER_HINT}`);
      return;
    }
    missing = '';
    device = await requestDevice(adapter);
    gpu = await createWebGpuExecutor(stories, POOL, { device });
  });
  afterAll(() => {
    gpu?.destroy();
    device?.destroy();
  });

  it('allNext on the GPU: the argmax after every position (the classify and readback path)', async (ctx) => {
    ctx.skip(gpu === null, missing);
    await checkAllNext(gpu!);
  });

  it('every request gets its solo tokens, the traces conform, and the tokens are the CPU runs’', async (ctx) => {
    ctx.skip(gpu === null, missing);
    const runs = await checkScenarios(gpu!);
    const onCpu = await cpuScenarios();
    for (const [name, run] of runs) expect(run.outputs, name).toEqual(onCpu.get(name)!.outputs);
  });
});

describe('pdspec run --speculative ngram: the tokens of plain greedy decoding', () => {
  const root = join(import.meta.dirname, '..');
  const pdspec = (args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  const common = ['run', '--requests', '8', '--block-size', String(T), '--blocks', '48', '--chunk', '8', '--seed', '3', '--output-len', 'uniform:8:60', '--outputs', '--json'];
  const dir = mkdtempSync(join(tmpdir(), 'pdspec-speculative-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The run's JSON summary and its trace's verdict. */
  function run(executor: string, speculative: boolean) {
    const trace = join(dir, `${executor}-${speculative ? 'spec' : 'plain'}.jsonl`);
    const r = pdspec([...common, '--executor', executor, '--trace-out', trace, ...(speculative ? ['--speculative', 'ngram'] : [])]);
    expect(r.status, r.stderr).toBe(0);
    const text = readFileSync(trace, 'utf8');
    const verdict = checkText(text, { quiescent: true });
    expect(verdict.verdict, formatVerdict(trace, verdict)).toBe('conforms');
    return { out: JSON.parse(r.stdout), version: JSON.parse(text.split('\n', 1)[0]).version as number };
  }

  let plainCpu: ReturnType<typeof run> | null = null;
  const plain = () => (plainCpu ??= run('cpu', false));

  it('--executor cpu: the same tokens as the plain run, with drafts accepted and rejected; the v3 trace conforms', () => {
    const spec = run('cpu', true);
    expect(spec.out.outputs).toEqual(plain().out.outputs);
    expect(spec.version).toBe(3);
    expect(plain().version).toBe(1);
    const s = spec.out.speculative;
    expect(s.verifies).toBeGreaterThan(0);
    expect(s.accepted).toBeGreaterThan(0);
    expect(s.drafted).toBeGreaterThan(s.accepted);
    expect(plain().out.speculative).toBeNull();
    // The summary says how many verifies, drafts and accepted drafts.
    const text = pdspec([...common.filter((a) => a !== '--json'), '--executor', 'cpu', '--speculative', 'ngram']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`speculative decoding \\(ngram drafter, k 3, n-grams 1\\.\\.3\\): ${s.verifySteps} verify step\\(s\\) with ${s.verifies} verify item\\(s\\), ${s.drafted} draft token\\(s\\) proposed, ${s.accepted} accepted`));
  });

  it('--executor webgpu: the same tokens as the plain CPU run', async (ctx) => {
    const adapter = await requestAdapter(webGpu());
    ctx.skip(!adapter, NO_ADAPTER_HINT);
    const spec = run('webgpu', true);
    expect(spec.out.outputs).toEqual(plain().out.outputs);
    expect(spec.out.speculative.accepted).toBeGreaterThan(0);
  });
});
