// Output invariance with real tokens: the engine drives the CPU reference and the WebGPU executor through
// the model adapter (engine/executors/model-adapter.ts), over its own block tables in one paged KV pool.
// Under batching, chunked prefill, preemption (a small pool), resizes mid-generation and aborts, every
// request's tokens equal those of the request run alone on the same executor, CPU and WebGPU runs give
// the same tokens, each trace conforms, and a block-ownership bug in the engine shows as wrong tokens.
// stories260K with blocks of 4 (the kernel shape model-webgpu.test.ts compiles too: llvmpipe's shader
// cache is then warm).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type EngineOptions, type Mode, type RunResult } from '../engine/engine.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import { DISAGGREGATED_UNSUPPORTED, modelFitError, ModelStepExecutor, promptTokens } from '../engine/executors/model-adapter.ts';
import type { KvPool, ModelExecutor } from '../engine/executors/model-executor.ts';
import { NO_ADAPTER_HINT, requestAdapter, requestDevice, webGpu } from '../engine/executors/webgpu/device.ts';
import { createWebGpuExecutor } from '../engine/executors/webgpu/executor.ts';
import { loadCheckpoint } from '../engine/model/checkpoint.ts';
import { STORIES260K_PATH } from '../engine/model/shipped.ts';
import { hash2, hashString } from '../engine/random.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import { checkText, formatVerdict } from '../spec/checker.ts';
import { cyclingPolicy, PROFILE, smallWorkload } from './engine-fixtures.ts';
import { PROPERTY_SEED } from './model-schedule.ts';

const adapter = await requestAdapter(webGpu());
if (!adapter) console.warn(`[engine-model] WebGPU tests skipped: ${NO_ADAPTER_HINT}`);

const stories = loadCheckpoint(STORIES260K_PATH);
const VOCAB = stories.config.vocabSize;
const T = 4;
/** Room for every engine pool below (≤ 40 blocks) and for a solo run (≤ 18 blocks). */
const POOL: KvPool = { numBlocks: 64, blockSize: T };

// ---------------------------------------------------------------------------------------------
// The reference: a request alone, straight on the executor (no engine): its prompt, then one decode
// position per token, in blocks 0, 1, 2, ...

const soloCache = new WeakMap<ModelExecutor, Map<string, number[]>>();

async function solo(model: ModelExecutor, r: WorkloadRequest): Promise<number[]> {
  const key = `${r.seed}/${r.prompt}/${r.output}/${r.prefix?.id ?? ''}/${r.prefix?.length ?? 0}`;
  let cache = soloCache.get(model);
  if (!cache) soloCache.set(model, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const blockTable = Array.from({ length: Math.ceil((r.prompt + r.output) / T) }, (_, i) => i);
  const prompt = promptTokens(r.seed!, r.prompt, VOCAB);
  // A shared prefix's positions are its sequence's, the same for every request that names it.
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

interface ModelRun {
  result: RunResult;
  outputs: Map<string, number[]>;
  text: string;
  adapter: ModelStepExecutor;
}

type RunOptions = Omit<EngineOptions, 'executor' | 'trace' | 'profile' | 'recordOutputs' | 'blockSize'>;

async function runOnModel(model: ModelExecutor, options: RunOptions): Promise<ModelRun> {
  const adapter = new ModelStepExecutor(model, PROFILE);
  adapter.checkPool(options.blocks, T);
  const sink = new MemorySink();
  const engine = new Engine({ ...options, profile: PROFILE, blockSize: T, executor: adapter, recordOutputs: true, trace: sink });
  const result = await engine.runToCompletionAsync();
  return { result, outputs: engine.outputs(), text: sink.text(), adapter };
}

/** Each request's tokens are its solo tokens (a prefix of them if it was aborted or rejected). */
async function expectSoloTokens(model: ModelExecutor, workload: readonly WorkloadRequest[], run: ModelRun): Promise<void> {
  const outcomes = new Map(run.result.records.map((r) => [r.id, r.outcome]));
  // A parallel sample (a fork, `id#k`) is its parent run alone: same seed, same prompt, greedy.
  const samples = workload.flatMap((r) => Array.from({ length: (r.n ?? 1) - 1 }, (_, k) => ({ ...r, id: `${r.id}#${k + 1}` })));
  for (const r of [...workload, ...samples]) {
    if (!run.outputs.has(r.id) && samples.includes(r)) continue; // a parent that ended at its first token forks nothing
    const got = run.outputs.get(r.id) ?? [];
    const want = await solo(model, r);
    if (outcomes.get(r.id) === 'finished') expect(got, `request ${r.id}`).toEqual(want);
    else expect(got, `request ${r.id} (${outcomes.get(r.id)})`).toEqual(want.slice(0, got.length));
  }
}

function expectConforms(run: ModelRun): void {
  const verdict = checkText(run.text, { quiescent: true });
  expect(verdict.verdict, formatVerdict('trace', verdict)).toBe('conforms');
}

// ---------------------------------------------------------------------------------------------
// The scenarios: batching, chunked prefill (8 positions a step, prompts up to 40), a pool small enough to
// preempt, a policy that resizes every 20 ms of virtual time (requests migrate mid-generation), aborts.

const workload: WorkloadRequest[] = smallWorkload(11, 14, { rate: 40, prompt: 'uniform:1:40', output: 'uniform:1:30', abortFraction: 0.25, abortAfter: 0.15 }).map(
  (r, i) => ({ ...r, seed: 7000 + i }),
);

// A function: the cycling policy keeps state, so each run needs its own.
const scenarios = (): { name: string; options: RunOptions }[] => [
  { name: 'semi-PD, decode-owned allocator, resizes', options: { mode: 'semi-pd', workload, blocks: 30, prefillChunk: 8, policy: cyclingPolicy('semi-pd', 0.02) } },
  { name: 'Nexus, asynchronous scheduling, resizes', options: { mode: 'nexus', workload, blocks: 30, prefillChunk: 8, asyncScheduling: true, policy: cyclingPolicy('nexus', 0.02) } },
  { name: 'unified, SplitFuse budget 8', options: { mode: 'unified', workload, blocks: 24, unifiedChunk: 8 } },
];

async function runScenarios(model: ModelExecutor): Promise<Map<string, ModelRun>> {
  const runs = new Map<string, ModelRun>();
  for (const s of scenarios()) runs.set(s.name, await runOnModel(model, s.options));
  return runs;
}

function expectScenarioCoverage(runs: Map<string, ModelRun>): void {
  let preemptions = 0;
  let aborted = 0;
  let migrated = 0;
  for (const run of runs.values()) {
    preemptions += run.result.metrics.preemptions;
    aborted += run.result.metrics.requests.aborted;
    migrated += (run.text.match(/"ev":"migrate"/g) ?? []).length;
    expect(run.result.stalled).toEqual([]);
    // One model step (one readback) per engine step.
    expect(run.adapter.stats.steps).toBe((run.text.match(/"ev":"step_begin"/g) ?? []).length);
  }
  expect(preemptions).toBeGreaterThan(0);
  expect(aborted).toBeGreaterThan(0);
  expect(migrated).toBeGreaterThan(0);
  expect(workload.some((r) => r.prompt > 8)).toBe(true); // so some prompts run in chunks
}

// ---------------------------------------------------------------------------------------------
// Random small workloads, modes and splits (few runs: real compute is slow on lavapipe)

interface Case {
  mode: Mode;
  requests: { prompt: number; output: number; arrival: number; abortAfter: number | null }[];
  blocks: number;
  chunk: number;
  prefill: number;
  decode: number;
  asyncScheduling: boolean;
  resizeEvery: number | null;
  maxBatch: number;
}

const caseArbitrary: fc.Arbitrary<Case> = fc.record({
  mode: fc.constantFrom<Mode>('semi-pd', 'nexus', 'unified'),
  requests: fc.array(
    fc.record({
      prompt: fc.integer({ min: 1, max: 20 }),
      output: fc.integer({ min: 1, max: 12 }),
      arrival: fc.integer({ min: 0, max: 50 }).map((ms) => ms / 1000),
      // One request in four is aborted by its client.
      abortAfter: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 150 }).map((ms) => ms / 1000), weight: 1 }),
    }),
    { minLength: 1, maxLength: 6 },
  ),
  blocks: fc.integer({ min: 6, max: 24 }), // small: requests preempt each other (or are rejected)
  chunk: fc.integer({ min: 1, max: 12 }),
  prefill: fc.integer({ min: 10, max: 90 }),
  decode: fc.integer({ min: 10, max: 100 }),
  asyncScheduling: fc.boolean(),
  resizeEvery: fc.option(fc.integer({ min: 5, max: 40 }).map((ms) => ms / 1000)),
  maxBatch: fc.integer({ min: 1, max: 6 }),
});

function caseOptions(c: Case): RunOptions {
  const workload: WorkloadRequest[] = c.requests.map((r, i) => ({
    id: `q${i}`,
    arrival: r.arrival,
    prompt: r.prompt,
    output: r.output,
    seed: 900 + i * 31 + r.prompt,
    ...(r.abortAfter === null ? {} : { abortAt: r.arrival + r.abortAfter }),
  }));
  workload.sort((a, b) => a.arrival - b.arrival);
  const split = c.mode === 'nexus' ? { prefill: c.prefill, decode: 100 - c.prefill } : { prefill: c.prefill, decode: c.decode };
  return {
    mode: c.mode,
    workload,
    blocks: c.blocks,
    maxBatch: c.maxBatch,
    asyncScheduling: c.asyncScheduling,
    ...(c.mode === 'unified' ? { unifiedChunk: c.chunk } : { prefillChunk: c.chunk, split, policy: c.resizeEvery === null ? null : cyclingPolicy(c.mode, c.resizeEvery) }),
  };
}

/** Runs the property; returns how many preemptions, migrations and aborts the runs had (its coverage). */
async function checkRandomRuns(model: ModelExecutor, numRuns: number): Promise<{ preemptions: number; migrations: number; aborts: number }> {
  const seen = { preemptions: 0, migrations: 0, aborts: 0 };
  await fc.assert(
    fc.asyncProperty(caseArbitrary, async (c) => {
      const options = caseOptions(c);
      const run = await runOnModel(model, options);
      expectConforms(run);
      await expectSoloTokens(model, options.workload, run);
      seen.preemptions += run.result.metrics.preemptions;
      seen.migrations += (run.text.match(/"ev":"migrate"/g) ?? []).length;
      seen.aborts += run.result.metrics.requests.aborted;
    }),
    { numRuns, seed: PROPERTY_SEED, endOnFailure: true },
  );
  return seen;
}

// ---------------------------------------------------------------------------------------------

const cpu = createCpuReferenceExecutor(stories, POOL);
afterAll(() => cpu.destroy());
let cpuRuns: Promise<Map<string, ModelRun>> | null = null;
const cpuScenarios = () => (cpuRuns ??= runScenarios(cpu));

describe('the engine on the CPU reference', () => {
  it('every request gets its solo tokens under batching, chunked prefill, preemption, resizes and aborts; the traces conform', async () => {
    const runs = await cpuScenarios();
    for (const [name, run] of runs) {
      expectConforms(run);
      expect(run.result.metrics.requests.total, name).toBe(workload.length);
      await expectSoloTokens(cpu, workload, run);
    }
    expectScenarioCoverage(runs);
  });

  it('property: random small workloads, modes, splits and pools give every request its solo tokens', async () => {
    const seen = await checkRandomRuns(cpu, 25);
    expect(seen.preemptions).toBeGreaterThan(0);
    expect(seen.migrations).toBeGreaterThan(0);
    expect(seen.aborts).toBeGreaterThan(0);
  });

  it('a block-ownership bug in the engine shows as wrong tokens (Z12: blocks released twice, then handed to two owners)', async () => {
    const options: RunOptions = { mode: 'semi-pd', workload: smallWorkload(3, 12, { rate: 40, prompt: 'uniform:1:30', output: 'uniform:2:20' }).map((r, i) => ({ ...r, seed: 100 + i })), blocks: 60, prefillChunk: 8 };
    const clean = await runOnModel(cpu, options);
    await expectSoloTokens(cpu, options.workload, clean);
    const faulty = await runOnModel(cpu, { ...options, faults: { duplicateRelease: true } });
    let wrong = 0;
    for (const r of options.workload) {
      const got = faulty.outputs.get(r.id)!;
      if (got.join() !== (await solo(cpu, r)).slice(0, got.length).join()) wrong++;
    }
    expect(wrong).toBeGreaterThan(0);
  });

  it('refuses what it cannot run, in one line: a step on a second pool, a pool larger than the model', async () => {
    const adapter = new ModelStepExecutor(cpu, PROFILE);
    const engine = new Engine({ mode: 'disaggregated', workload: [{ id: 'a', arrival: 0, prompt: 4, output: 3 }], profile: PROFILE, blocks: 8, blockSize: T, executor: adapter });
    await expect(engine.runToCompletionAsync()).rejects.toThrow(DISAGGREGATED_UNSUPPORTED);
    expect(() => adapter.checkPool(65, T)).toThrow(/pool of 65 blocks is larger than the model executor's 64/);
    expect(() => adapter.checkPool(8, 16)).toThrow(/block size 16 differs from the model executor's 4/);
    expect(modelFitError({ id: 'x', prompt: 500, output: 13 }, 512, 'stories260K.bin')).toBe("request 'x' needs prompt 500 + output 13 = 513 positions, more than stories260K.bin's seq_len 512");
    expect(modelFitError({ id: 'x', prompt: 500, output: 12 }, 512)).toBeNull();
  });
});

// Shared KV: two system prompts, requests that hit their cached blocks and skip computing them, parallel
// samples that share their parent's blocks and copy the one both write (copy-on-write), a pool small enough
// that cached blocks are evicted and reissued.
const sharedWorkload: WorkloadRequest[] = smallWorkload(21, 12, { rate: 60, prompt: 'uniform:10:30', output: 'uniform:2:12' }).map((r, i) => ({
  ...r,
  seed: 5000 + i,
  ...(i % 4 !== 3 ? { prefix: { id: i % 2 === 0 ? 'sysA' : 'sysB', length: Math.min(r.prompt, i % 2 === 0 ? 9 : 13) } } : {}),
  ...(i % 3 === 1 ? { n: 2 } : {}),
}));

const sharedScenarios = (): { name: string; options: RunOptions }[] => [
  { name: 'unified, hash cache', options: { mode: 'unified', workload: sharedWorkload, blocks: 16, unifiedChunk: 8, prefixCaching: true } },
  { name: 'semi-PD, radix cache, asynchronous', options: { mode: 'semi-pd', workload: sharedWorkload, blocks: 18, prefillChunk: 8, prefixCaching: true, prefixCache: 'radix', asyncScheduling: true } },
  { name: 'Nexus, resizes', options: { mode: 'nexus', workload: sharedWorkload, blocks: 30, prefillChunk: 8, prefixCaching: true, policy: cyclingPolicy('nexus', 0.02) } },
];

async function checkSharedRuns(model: ModelExecutor): Promise<Map<string, ModelRun>> {
  const runs = new Map<string, ModelRun>();
  const seen = { hits: 0, evictions: 0, forks: 0, copies: 0 };
  for (const s of sharedScenarios()) {
    const run = await runOnModel(model, s.options);
    expectConforms(run);
    expect(run.text.split('\n', 1)[0]).toMatch(/"version":2/);
    await expectSoloTokens(model, sharedWorkload, run);
    for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k] += run.result.sharing[k];
    runs.set(s.name, run);
  }
  // Every mechanism ran: hits that skip computing, evictions, forks and copies.
  expect(seen.hits, JSON.stringify(seen)).toBeGreaterThan(0);
  expect(seen.evictions, JSON.stringify(seen)).toBeGreaterThan(0);
  expect(seen.forks, JSON.stringify(seen)).toBeGreaterThan(0);
  expect(seen.copies, JSON.stringify(seen)).toBeGreaterThan(0);
  return runs;
}

describe('shared KV on the CPU reference: output invariance with prefix hits, evictions, forks and copy-on-write', () => {
  it('every request (and every parallel sample) gets its solo tokens, whatever it shares; the v2 traces conform', async () => {
    await checkSharedRuns(cpu);
  });

  it('a copy-on-write whose copy is not carried out shows as wrong tokens', async () => {
    // The executor drops the copies: the copy block holds stale K/V where the shared block's positions were.
    const dropCopies: ModelExecutor = { name: cpu.name, model: cpu.model, pool: cpu.pool, step: (input) => cpu.step({ ...input, copies: [] }), destroy: () => {} };
    const options = sharedScenarios()[0].options;
    const run = await runOnModel(dropCopies, options);
    expect(run.result.sharing.copies).toBeGreaterThan(0);
    let wrong = 0;
    for (const r of sharedWorkload) {
      for (const id of [r.id, ...(r.n === 2 ? [`${r.id}#1`] : [])]) {
        const got = run.outputs.get(id);
        if (got && got.join() !== (await solo(cpu, r)).slice(0, got.length).join()) wrong++;
      }
    }
    expect(wrong).toBeGreaterThan(0);
  });
});

describe.skipIf(!adapter)('the engine on the WebGPU executor', () => {
  let device: GPUDevice;
  let gpu: ModelExecutor;
  beforeAll(async () => {
    device = await requestDevice(adapter!);
    gpu = await createWebGpuExecutor(stories, POOL, { device });
  });
  afterAll(() => {
    gpu?.destroy();
    device?.destroy();
  });

  it('every request gets its solo tokens, the traces conform, and the tokens are those of the CPU runs', async () => {
    const runs = await runScenarios(gpu);
    const cpuRunsDone = await cpuScenarios();
    for (const [name, run] of runs) {
      expectConforms(run);
      await expectSoloTokens(gpu, workload, run);
      expect(run.outputs, name).toEqual(cpuRunsDone.get(name)!.outputs);
    }
    expectScenarioCoverage(runs);
  });

  it('property: random small workloads, modes, splits and pools give every request its solo tokens', async () => {
    await checkRandomRuns(gpu, 8);
  });

  it('shared KV: every request and sample gets its solo tokens (copy-on-write copies on the GPU), the same as on the CPU', async () => {
    const runs = await checkSharedRuns(gpu);
    for (const s of sharedScenarios()) expect(runs.get(s.name)!.outputs, s.name).toEqual((await runOnModel(cpu, s.options)).outputs);
  });
});

describe('pdspec run --executor cpu|webgpu', () => {
  const root = join(import.meta.dirname, '..');
  const pdspec = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true', ...env } });

  it('serves real tokens (--outputs), and the trace conforms with quiescence', async () => {
    const trace = join(mkdtempSync(join(tmpdir(), 'pdspec-model-')), 'run.jsonl');
    const r = pdspec(['run', '--executor', 'cpu', '--requests', '6', '--block-size', String(T), '--blocks', '40', '--chunk', '8', '--seed', '2', '--outputs', '--json', '--trace-out', trace]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ executor: 'cpu', workload: 'poisson', model: { seqLen: 512, vocabSize: VOCAB } });
    expect(out.metrics.requests).toMatchObject({ total: 6, finished: 6 });
    // Each request's ids are its solo tokens: the engine derives its seed from the run's seed and its id,
    // and the trace's arrive events give its lengths.
    const arrivals = readFileSync(trace, 'utf8')
      .split('\n')
      .filter((line) => line.includes('"ev":"arrive"'))
      .map((line) => JSON.parse(line) as { req: string; prompt: number; maxTokens: number });
    expect(arrivals).toHaveLength(6);
    for (const a of arrivals) {
      const want = await solo(cpu, { id: a.req, arrival: 0, prompt: a.prompt, output: a.maxTokens, seed: hash2(2, hashString(a.req)) });
      expect(out.outputs[a.req], a.req).toEqual(want);
    }
    const c = pdspec(['conform', trace, '--quiescent']);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/conforms — \d+ events, 6 request\(s\), 6 ended, quiescent/);
  });

  it('bad input: exit 2 with one line', () => {
    for (const [args, pattern] of [
      [['--executor', 'cpu', '--prompt-len', '400', '--output-len', '200'], /needs prompt \d+ \+ output \d+ = \d+ positions, more than stories260K\.bin's seq_len 512; use shorter/],
      [['--executor', 'cpu', '--workload', 'azure-conv'], /more than stories260K\.bin's seq_len 512; shorten it in the workload/],
      [['--executor', 'cpu', '--mode', 'disaggregated'], /disaggregated mode \(two pools and KV transfers\) is not supported/],
      [['--executor', 'cpu', '--model', '/no/such.bin'], /\/no\/such\.bin: no such checkpoint file/],
      [['--workload', 'poisson', '--model', 'x.bin'], /--model needs --executor cpu or webgpu/],
      [['--workload', 'poisson', '--executor', 'tpu'], /--executor must be one of cost-model, cpu, webgpu, got 'tpu'/],
    ] as const) {
      const r = pdspec(['run', ...args]);
      expect(r.status, `${args.join(' ')}\n${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    }
  });

  it('--executor webgpu without an adapter says how to get one, exit 2', () => {
    // No Vulkan driver to be found: Dawn then has no adapter (the loader's own warnings come first).
    const r = pdspec(['run', '--executor', 'webgpu', '--requests', '2'], { VK_ICD_FILENAMES: '/nonexistent.json', VK_DRIVER_FILES: '/nonexistent.json' });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n').pop()).toMatch(/^pdspec run: no WebGPU adapter: install a Vulkan driver/);
  });
});
