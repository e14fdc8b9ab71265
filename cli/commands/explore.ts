// `pdspec explore`: exhaustive bounded model checking of the spec.
import { CAD_CONFIG, configProblems, DEFAULT_CONFIG, headerOf, SHARING_CONFIG, V3_CONFIG, type ExploreConfig } from '../../properties/explore/config.ts';
import { formatEvent, writeCounterexample } from '../../properties/explore/counterexample.ts';
import { explore, type ExploreResult } from '../../properties/explore/explorer.ts';
import { swarmSearch, type SwarmMember } from '../../properties/explore/swarm.ts';
import { exploreOnWorkers, mergeResults } from '../../properties/explore/parallel.ts';
import { readFileSync } from 'node:fs';
import { loadPolicy, PolicyFault, PolicyLoadError } from '../../engine/policies/index.ts';
import { latencyModel, loadProfile } from '../../engine/profile.ts';
import { policySplit } from '../../properties/explore/policy-split.ts';
import { defaultConfigFor, VARIANTS } from '../../properties/explore/variants.ts';
import { MODES, ALLOCATORS, PREFIX_CACHES } from '../../spec/trace-format.ts';
import type { ReportData } from '../../properties/report-data.ts';
import { ReportDir } from '../report/report-dir.ts';
import { checkOutputFile, EXIT, intOption, parseOptions, shellWord, sloOption, UsageError, type Command } from '../common.ts';

const usage = [
  'pdspec explore [--requests N] [--prompt N] [--output N] [--blocks N] [--block-size N] [--chunk N]',
  '               [--resizes N] [--aborts N] [--preemptions N] [--mode MODE] [--allocator lock|decode-owned]',
  '               [--alloc-steps auto|one|three] [--no-symmetry] [--variant NAME] [--max-states N]',
  '               [--sharing] [--prefix-cache hash|radix] [--prefixes KEY,KEY,...] [--forks N]   (trace v2, shared KV)',
  '               [--positions] [--drafts K] [--verifies N] [--window W] [--state-slots N]   (trace v3)',
  '               [--mode cad] [--cad-servers N] [--cad-buffers N] [--cad-shards N] [--server-losses N]   (trace v4, core-attention disaggregation)',
  '               [--policy NAME|FILE] [--slo TTFT,TPOT] [--out cex.jsonl] [--report DIR] [--json]',
  '               [--workers N | --shard I/N] [--seed S]   (a swarm of randomized searches instead of one exhaustive one)',
  '       pdspec explore --merge SHARD.json ...   (the --json outputs of the members of one swarm)',
].join('\n');

const options = {
  requests: { type: 'string' },
  prompt: { type: 'string' },
  output: { type: 'string' },
  blocks: { type: 'string' },
  'block-size': { type: 'string' },
  chunk: { type: 'string' },
  resizes: { type: 'string' },
  aborts: { type: 'string' },
  preemptions: { type: 'string' },
  mode: { type: 'string' },
  allocator: { type: 'string' },
  'alloc-steps': { type: 'string' },
  'no-symmetry': { type: 'boolean' },
  sharing: { type: 'boolean' },
  'prefix-cache': { type: 'string' },
  prefixes: { type: 'string' },
  forks: { type: 'string' },
  positions: { type: 'boolean' },
  drafts: { type: 'string' },
  verifies: { type: 'string' },
  window: { type: 'string' },
  'state-slots': { type: 'string' },
  'cad-servers': { type: 'string' },
  'cad-buffers': { type: 'string' },
  'cad-shards': { type: 'string' },
  'server-losses': { type: 'string' },
  variant: { type: 'string' },
  'max-states': { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  workers: { type: 'string' },
  shard: { type: 'string' },
  merge: { type: 'boolean' },
  seed: { type: 'string' },
  policy: { type: 'string' },
  slo: { type: 'string' },
  report: { type: 'string' },
} as const;

/** Options that choose how to search, not what: with only these (or none), `explore` searches the three default bounds. */
const SEARCH_ONLY = new Set(['no-symmetry', 'max-states', 'json', 'out', 'report']);

/** Whether the options leave the bound at its defaults: then the v1 bound, the sharing bound and the v3 bound are searched. */
export function defaultBounds(values: Record<string, unknown>): boolean {
  return Object.entries(values).every(([k, v]) => v === undefined || SEARCH_ONLY.has(k));
}

export function configFromArgs(values: Record<string, string | boolean | undefined>): ExploreConfig {
  const variant = (values.variant as string | undefined) ?? null;
  if (variant !== null && !VARIANTS[variant]) throw new UsageError(`unknown variant '${variant}' (variants: ${Object.keys(VARIANTS).join(', ')})`);
  // The bound starts from the v1 default, the sharing default (--sharing or any of its options), the v3 default
  // (--positions or any of its options), or the bound of a shared-KV or v3 variant.
  const sharing = values.sharing === true || values['prefix-cache'] !== undefined || values.prefixes !== undefined || values.forks !== undefined;
  const v3 = values.positions === true || values.drafts !== undefined || values.verifies !== undefined || values.window !== undefined || values['state-slots'] !== undefined;
  // Core-attention disaggregation (trace v4): `--mode cad` is a unified engine with attention servers.
  const cad = values.mode === 'cad' || ['cad-servers', 'cad-buffers', 'cad-shards', 'server-losses'].some((k) => values[k] !== undefined);
  const base = defaultConfigFor(variant);
  const d = cad && base.cadServers === 0 ? CAD_CONFIG : !base.sharing && sharing ? SHARING_CONFIG : !base.positions && v3 ? V3_CONFIG : base;
  const prefixCache = (values['prefix-cache'] as string | undefined) ?? d.prefixCache;
  if (!(PREFIX_CACHES as readonly string[]).includes(prefixCache)) throw new UsageError(`--prefix-cache must be one of ${PREFIX_CACHES.join(', ')}`);
  const prefixes = values.prefixes === undefined ? d.prefixes : String(values.prefixes).split(',');
  if (!prefixes.every((p) => /^[A-Za-z0-9_.-]{1,16}$/.test(p))) throw new UsageError(`--prefixes must be a comma-separated list of keys (1 to 16 letters, digits, _ . -), got '${values.prefixes}'`);
  const mode = values.mode === 'cad' || values.mode === undefined ? d.mode : (values.mode as string);
  if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}, or cad (a unified engine with attention servers, trace v4)`);
  const allocator = (values.allocator as string | undefined) ?? d.allocator;
  if (!(ALLOCATORS as readonly string[]).includes(allocator)) throw new UsageError(`--allocator must be one of ${ALLOCATORS.join(', ')}`);
  const allocSteps = (values['alloc-steps'] as string | undefined) ?? d.allocSteps;
  if (!['auto', 'one', 'three'].includes(allocSteps)) throw new UsageError('--alloc-steps must be auto, one or three');
  const int = (name: string, fallback: number, min: number) => intOption(values[name] as string | undefined, name, fallback, min);
  const prompt = int('prompt', d.prompt, 1);
  const resizes = int('resizes', mode === 'unified' || mode === 'disaggregated' ? 0 : d.resizes, 0);
  return {
    ...d,
    mode: mode as ExploreConfig['mode'],
    allocator: allocator as ExploreConfig['allocator'],
    allocSteps: allocSteps as ExploreConfig['allocSteps'],
    requests: int('requests', d.requests, 1),
    prompt,
    output: int('output', d.output, 1),
    blocks: int('blocks', d.blocks, 1),
    blockSize: int('block-size', d.blockSize, 1),
    // The chunk follows the prompt, unless the bound chunks its prefill (the v3 bound).
    chunk: int('chunk', d.chunk < d.prompt ? d.chunk : Math.max(d.chunk, prompt), 1),
    resizes,
    aborts: int('aborts', d.aborts, 0),
    preemptions: int('preemptions', d.preemptions, 0),
    splits: mode === 'nexus' ? [{ prefill: 70, decode: 30 }] : d.splits,
    prefixCache: prefixCache as ExploreConfig['prefixCache'],
    prefixes,
    forks: int('forks', d.forks, 0),
    // --sharing with a v3 option keeps both, and configProblems says they do not combine.
    positions: d.positions || v3,
    drafts: int('drafts', d.drafts, 0),
    verifies: int('verifies', d.verifies, 0),
    window: int('window', d.window, 0),
    stateSlots: int('state-slots', d.stateSlots, 0),
    cadServers: int('cad-servers', d.cadServers, 0),
    cadBuffers: int('cad-buffers', d.cadBuffers, 1),
    cadShards: int('cad-shards', d.cadShards, 1),
    serverLosses: int('server-losses', d.serverLosses, 0),
    symmetry: !values['no-symmetry'],
    variant,
    maxStates: int('max-states', d.maxStates, 1),
  };
}

function describeBound(c: ExploreConfig): string {
  return [
    `${c.mode}`,
    `${c.requests} request(s) (prompt ${c.prompt}, output ${c.output}${c.chunk < c.prompt ? `, chunk ${c.chunk}` : ''})`,
    `${c.blocks} blocks of ${c.blockSize}`,
    `${c.resizes} resize(s)${c.policy ? ` to the split policy ${c.policy.name} decides` : ''}`,
    `${c.aborts} abort(s)`,
    `${c.preemptions} preemption(s)`,
    `${c.allocator} allocator`,
    ...(c.sharing ? [`shared KV (trace v2): prefixes ${c.prefixes.join(',') || 'all distinct'}, ${c.prefixCache} cache, ${c.forks} fork(s)`] : []),
    ...(c.positions && c.cadServers === 0 ? [`trace v3: ${v3Bound(c)}`] : []),
    ...(c.cadServers > 0 ? [`trace v4: ${cadBound(c)}`] : []),
    `symmetry ${c.symmetry ? 'on' : 'off'}`,
    ...(c.variant ? [`variant ${c.variant} (${VARIANTS[c.variant].zoo.startsWith('Z') ? `${VARIANTS[c.variant].zoo}: ` : ''}${VARIANTS[c.variant].says})`] : []),
  ].join(', ');
}

/** The most worker threads of a swarm in one process. */
const MAX_WORKERS = 64;

/** The command that finds the same counterexample again (a swarm member's: its shard and seed are kept). */
export function replayCommand(args: string[]): string {
  // --workers stays: the swarm's members and the merge depend on it.
  const drop = new Set(['--json', '--out', '--report']);
  return ['npx pdspec explore', ...args.filter((a, i) => !drop.has(a) && !(drop.has(args[i - 1]) && args[i - 1] !== '--json')).map(shellWord)].join(' ');
}

function humanReport(r: ExploreResult, out: string | undefined, replay: string, swarm: boolean): string {
  const lines = [`pdspec explore: ${describeBound(r.config)}`];
  const stats = `${r.states.toLocaleString('en')} distinct states, ${r.transitions.toLocaleString('en')} transitions, depth ${r.depth}, ${r.seconds.toFixed(1)} s (${Math.round(r.statesPerSecond).toLocaleString('en')} states/s), peak memory ${Math.round(r.peakMemoryMiB)} MiB`;
  if (r.verdict === 'verified' && swarm)
    lines.push(
      `every state of the bound visited by one member of the swarm: the safety rules hold and nothing deadlocks (starvation and event coverage come from the exhaustive search: run without --shard/--workers): ${stats}`,
    );
  else if (r.verdict === 'verified') lines.push(`verified at this bound: ${stats}`);
  else if (r.verdict === 'incomplete' && swarm) lines.push(`no violation found by the swarm (randomized searches, not a proof; exhaustive: run without --shard/--workers): ${stats}`);
  else if (r.verdict === 'incomplete') lines.push(`incomplete: stopped at --max-states ${r.config.maxStates}; ${stats}`);
  else {
    const f = r.finding!;
    lines.push(`violation of ${f.rule}: ${f.message}`);
    lines.push(`${stats}`);
    lines.push(
      f.kind === 'starvation'
        ? `counterexample (${f.trace.length} events; the last ${f.cycle} repeat forever):`
        : swarm
          ? `counterexample (${f.trace.length} events; found by a randomized search, not necessarily the shortest):`
          : `shortest counterexample (${f.trace.length} events):`,
    );
    f.trace.forEach((ev, i) => lines.push(`  ${String(i + 1).padStart(3)}  ${formatEvent(ev)}${f.cycle && i === f.trace.length - f.cycle ? '   ← the cycle starts here' : ''}`));
    if (out) lines.push(`written to ${out} (trace v${headerOf(r.config).version}) — check it with: npx pdspec conform ${out}`);
    lines.push(`reproduce: ${replay}`);
  }
  // Coverage means something only for a search that went through the whole bound.
  if (r.verdict === 'verified' && r.sharing) lines.push(`shared KV covered: ${sharingWords(r)}`);
  if (r.verdict === 'verified' && r.v3 && r.config.cadServers === 0) lines.push(`trace v3 covered: ${v3Words(r)}`);
  if (r.verdict === 'verified' && r.config.cadServers > 0) lines.push(`trace v4 covered: ${cadWords(r)}`);
  if (r.verdict === 'verified' && !swarm) {
    if (r.neverEnabled.length) lines.push(`events never enabled at this bound: ${r.neverEnabled.join(', ')}`);
    if (r.neverTaken.length) lines.push(`machine transitions never taken at this bound (${r.neverTaken.length}): ${r.neverTaken.join(', ')}`);
  }
  return lines.join('\n');
}

/** The shared KV a search covered, in words: its transitions that hit, evict, fork, copy and insert. */
export function sharingWords(r: ExploreResult): string {
  const c = r.sharing!;
  const n = (x: number) => x.toLocaleString('en');
  return `${n(c.hits)} prefix hit(s), ${n(c.evictions)} eviction(s), ${n(c.forks)} fork(s), ${n(c.copies)} copy-on-write(s), ${n(c.inserts)} cache insert(s) (edges of the explored state graph)`;
}

/** The v3 part of a bound, in words: drafts and verifies, the layer groups, the state slots, preemption in any phase. */
export function v3Bound(c: ExploreConfig): string {
  return [
    c.drafts > 0 && c.verifies > 0 ? `${c.verifies} ${c.verifies === 1 ? 'verify' : 'verifies'} of 1..${c.drafts} draft(s)` : 'no speculative verify',
    c.window > 0 ? `layer groups full and swa (window ${c.window})` : 'one layer group',
    ...(c.stateSlots > 0 ? [`${c.stateSlots} state slot(s) per GPU`] : []),
    'preemption while prefilling',
  ].join(', ');
}

/** The v4 part of a bound, in words: the attention servers, their buffers, the shards, the losses. */
export function cadBound(c: ExploreConfig): string {
  return `${c.cadServers} attention server(s) of ${c.cadBuffers} buffer(s), ${c.cadShards} query shard(s) per item, ${c.serverLosses} server loss(es)`;
}

/** The trace v4 a search covered, in words: its task and server-loss transitions. */
export function cadWords(r: ExploreResult): string {
  const n = (e: string) => (r.events[e as keyof typeof r.events] ?? 0).toLocaleString('en');
  return `${n('task_create')} task creations, ${n('task_dispatch')} dispatches, ${n('task_end')} task ends, ${n('task_consume')} results read back, ${n('server_lost')} server loss(es) (edges of the explored state graph)`;
}

/** The trace v3 a search covered, in words: its transitions that verify, reject drafts, free out of a window, preempt a prefill. */
export function v3Words(r: ExploreResult): string {
  const c = r.v3!;
  const n = (x: number) => x.toLocaleString('en');
  return `${n(c.verifies)} verifies, ${n(c.rejections)} rejection(s) of drafts, ${n(c.partialFrees)} partial free(s) out of a window, ${n(c.prefillPreemptions)} preemption(s) while prefilling${r.config.stateSlots > 0 ? `, ${n(c.slots)} state slot allocation(s)` : ''} (edges of the explored state graph)`;
}

export const exploreCommand: Command = {
  name: 'explore',
  summary: [
    'Explores every interleaving of the spec at a bound: every reached state is checked against every invariant,',
    'deadlocks and (weakly fair) starvation cycles are searched for; a violation comes back as the shortest',
    'counterexample, written as a trace file that `pdspec conform` rejects. Without options that change the bound, three',
    'bounds are searched: the v1 default, the shared-KV default (trace v2: prefix hits, evictions, a fork,',
    'copy-on-write; --sharing alone), the v3 default (positions, a speculative verify accepted or rejected, a',
    'sliding window whose oldest block is freed, preemption while prefilling; --positions alone) and the v4 default',
    '(core-attention disaggregation: query-shard tasks on two attention servers with ping-pong buffers, a server',
    'loss; --mode cad alone).',
    `Variants reintroduce bug-zoo mechanisms: ${Object.keys(VARIANTS).join(', ')}.`,
    '--report DIR writes the result into the report of `pdspec check`, a counterexample drawn as a timeline.',
    'Exit 0: verified at the bound; 1: a violation; 2: bad configuration.',
  ].join('\n'),
  usage,
  async run(args) {
    const { values, positionals } = parseOptions(args, options, usage);
    let result: ExploreResult;
    let replay: string;
    let config: ExploreConfig;
    let policySource: string | null = null;
    const seed = intOption(values.seed as string | undefined, 'seed', 1, 0);
    if (values.out !== undefined) checkOutputFile(values.out as string, '--out');
    if (values.report !== undefined) ReportDir.check(values.report as string);
    if (!values.merge && positionals.length === 0 && defaultBounds(values)) return runDefaultBounds(args, values, seed);
    if (values.merge) {
      if (positionals.length === 0) throw new UsageError(`--merge needs the JSON outputs of the shards\nusage: ${usage}`);
      const results = positionals.map((file) => {
        let shard: unknown;
        try {
          shard = JSON.parse(readFileSync(file, 'utf8'));
        } catch (err) {
          throw new UsageError(`${file}: not the --json output of a shard (${(err as Error).message.split('\n')[0]})`);
        }
        const problem = shardProblem(shard);
        if (problem) throw new UsageError(`${file}: not the --json output of a shard (${problem})`);
        return shard as ExploreResult & { replay: string };
      });
      const keys = new Set(results.map((r) => JSON.stringify({ ...r.config })));
      if (keys.size > 1) throw new UsageError('the shards were run with different bounds; they are not parts of one search');
      result = mergeResults(results);
      config = result.config;
      // The replay of the member whose counterexample the merge kept (the shortest).
      replay = results.find((r) => r.verdict === 'violated' && r.finding!.trace.length === result.finding?.trace.length)?.replay ?? results[0].replay;
    } else {
      if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
      config = configFromArgs(values);
      const problems = configProblems(config);
      if (problems.length) throw new UsageError(problems.join('\n'));
      const workers = intOption(values.workers as string | undefined, 'workers', 1, 1);
      if (workers > MAX_WORKERS) throw new UsageError(`--workers must be at most ${MAX_WORKERS} (each holds a search's memory), got ${workers}`);
      let member: SwarmMember | undefined;
      if (values.shard !== undefined) {
        const m = /^(\d+)\/(\d+)$/.exec(values.shard as string);
        if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new UsageError(`--shard must be I/N with 0 ≤ I < N, got '${values.shard}'`);
        member = { index: Number(m[1]), count: Number(m[2]), seed };
        if (workers > 1) throw new UsageError('--shard and --workers do not combine: run shards as separate jobs, or workers in one');
      }
      let closePolicy: (() => Promise<void>) | undefined;
      if (values.policy !== undefined) {
        if (workers > 1) throw new UsageError('--policy runs in this process: use --shard for separate jobs instead of --workers');
        const slo = sloOption(values.slo as string | undefined, { ttft: 0.4, tpot: 0.2 });
        const profile = loadProfile();
        const model = latencyModel(profile);
        let handle;
        try {
          handle = await loadPolicy(values.policy as string, { profile });
        } catch (err) {
          if (err instanceof PolicyLoadError) throw new UsageError(err.message);
          throw err;
        }
        const policy = handle;
        closePolicy = () => policy.close();
        policySource = handle.source;
        config.policy = { name: handle.name, decide: (sys) => policySplit(sys, policy, model, slo) };
      }
      const { tty, progress } = progressReporter(values.json === true);
      try {
        result =
          workers > 1
            ? await exploreOnWorkers(config, workers, seed)
            : member
              ? swarmSearch(config, member)
              : explore(config, { progress });
      } catch (err) {
        if (err instanceof PolicyFault) throw new UsageError(err.message);
        throw err;
      } finally {
        // The policy's worker (and a module's or command's process) would keep this process alive.
        await closePolicy?.();
      }
      if (tty) process.stderr.write('\r\x1b[K');
      replay = replayCommand(args);
    }
    const out = values.out as string | undefined;
    if (result.finding && out) writeCounterexample(out, config, result.finding, replay);
    const swarm = values.merge === true || values.shard !== undefined || Number(values.workers ?? 1) > 1;
    if (values.json) console.log(JSON.stringify({ ...result, replay, ...(out && result.finding ? { out } : {}) }));
    else console.log(humanReport(result, out, replay, swarm));
    if (values.report !== undefined) {
      const where = await writeExploreReport(values.report as string, [{ r: result, config, replay }], swarm, args, seed, policySource);
      if (!values.json) console.log(`report: ${where}`);
    }
    if (result.verdict === 'incomplete' && swarm) return EXIT.holds;
    if (result.verdict === 'incomplete') {
      if (!values.json) console.error(`the bound is too large for --max-states ${config.maxStates}: lower --requests, --blocks or --resizes, or raise --max-states`);
      return EXIT.badInput;
    }
    return result.verdict === 'verified' ? EXIT.holds : EXIT.violated;
  },
};

/**
 * Where a search reports its progress: a line redrawn on a terminal; off one (CI logs), a plain line every
 * 10 s so that a long search is not silent; nothing under --json.
 */
function progressReporter(json: boolean): { tty: boolean; progress: ((states: number, depth: number) => void) | undefined } {
  const tty = process.stderr.isTTY === true && !process.env.CI && !json;
  const started = performance.now();
  let lastLine = started;
  if (tty) return { tty, progress: (n, d) => process.stderr.write(`\r  ${n.toLocaleString('en')} states, depth ${d}   `) };
  if (json) return { tty, progress: undefined };
  return {
    tty,
    progress: (n, d) => {
      const now = performance.now();
      if (now - lastLine < 10_000) return;
      lastLine = now;
      process.stderr.write(`  ${n.toLocaleString('en')} states, depth ${d}, ${((now - started) / 1000).toFixed(0)} s\n`);
    },
  };
}

/**
 * `pdspec explore` with no option that changes the bound: the v1 default bound, the shared-KV default bound
 * (`--sharing`), then the v3 default bound (`--positions`), each reported as its own search; the exit code is
 * the worst of them.
 */
async function runDefaultBounds(args: string[], values: Record<string, string | boolean | undefined>, seed: number): Promise<number> {
  const configs = [configFromArgs(values), configFromArgs({ ...values, sharing: true }), configFromArgs({ ...values, positions: true }), configFromArgs({ ...values, mode: 'cad' })];
  const problems = [...new Set(configs.flatMap(configProblems))];
  if (problems.length) throw new UsageError(problems.join('\n'));
  const replays = [replayCommand(args), replayCommand(['--sharing', ...args]), replayCommand(['--positions', ...args]), replayCommand(['--mode', 'cad', ...args])];
  const { tty, progress } = progressReporter(values.json === true);
  const results: ExploreResult[] = [];
  for (const config of configs) {
    results.push(explore(config, { progress }));
    if (tty) process.stderr.write('\r\x1b[K');
  }
  const out = values.out as string | undefined;
  const violated = results.findIndex((r) => r.verdict === 'violated');
  if (out && violated >= 0) writeCounterexample(out, configs[violated], results[violated].finding!, replays[violated]);
  if (values.json) console.log(JSON.stringify({ verdict: violated >= 0 ? 'violated' : results.some((r) => r.verdict === 'incomplete') ? 'incomplete' : 'verified', bounds: results.map((r, i) => ({ ...r, replay: replays[i], ...(out && i === violated ? { out } : {}) })) }));
  else console.log(results.map((r, i) => humanReport(r, i === violated ? out : undefined, replays[i], false)).join('\n\n'));
  if (values.report !== undefined) {
    const where = await writeExploreReport(values.report as string, results.map((r, i) => ({ r, config: configs[i], replay: replays[i] })), false, args, seed, null);
    if (!values.json) console.log(`report: ${where}`);
  }
  if (violated >= 0) return EXIT.violated;
  const cut = results.find((r) => r.verdict === 'incomplete');
  if (cut) {
    if (!values.json) console.error(`the bound is too large for --max-states ${cut.config.maxStates}: raise --max-states`);
    return EXIT.badInput;
  }
  return EXIT.holds;
}

/** The exploration as a report (cli/report/): a check per bound searched, and a violation's counterexample as a timeline. */
async function writeExploreReport(
  dir: string,
  runs: { r: ExploreResult; config: ExploreConfig; replay: string }[],
  swarm: boolean,
  args: string[],
  seed: number,
  policySource: string | null,
): Promise<string> {
  const { exploreCheckResult } = await import('../report/results.ts');
  const report = ReportDir.open(dir);
  const config = runs[0].config;
  const name = config.policy?.name ?? (config.variant ? `spec + ${config.variant}` : 'spec');
  const checks = runs.map(({ r, config: c, replay }) => {
    // Each bound's counterexample file is named after the bound (a v1, a v2 and a v3 one may all fail).
    const check = exploreCheckResult(r, c, replay, report.staging, runs.length > 1 && c.sharing ? `${name} sharing` : runs.length > 1 && c.cadServers > 0 ? `${name} cad` : runs.length > 1 && c.positions ? `${name} v3` : name);
    if (swarm && r.verdict === 'verified') Object.assign(check, { property: 'safety rules, deadlock', detail: `every state of the bound (${r.states.toLocaleString('en')}) visited by one member of a swarm: the safety rules hold and nothing deadlocks; starvation is searched by the exhaustive search only` });
    if (swarm && r.verdict === 'incomplete') Object.assign(check, { status: 'warn', property: 'safety rules, deadlock', detail: `no violation found by a swarm of randomized searches over ${r.states.toLocaleString('en')} states: not a proof (run without --shard/--workers for one)` });
    return check;
  });
  const verdicts = runs.map(({ r }) => r.verdict);
  const data: ReportData = {
    version: 1,
    command: ['pdspec explore', ...args].join(' '),
    seed,
    verdict: verdicts.includes('violated') ? 'violated' : verdicts.includes('incomplete') && !swarm ? 'bad-input' : 'holds',
    startedAt: new Date().toISOString(),
    seconds: runs.reduce((a, { r }) => a + r.seconds, 0),
    policies: [{ name, source: policySource ?? (config.variant ? `properties/explore/variants.ts (${config.variant})` : 'spec/'), claimsMonotone: false, checks, sweeps: [] }],
    sources: {
      profile: config.policy ? 'llama3-8b-h100: the latency model the policy decides with' : 'none: the exploration is untimed',
      traces: [],
      notes: runs.map(
        ({ config: c }) =>
          `Bound: ${c.mode}, ${c.requests} requests (prompt ${c.prompt}, output ${c.output}), ${c.blocks} blocks of ${c.blockSize}, ${c.resizes} resize(s), ${c.aborts} abort(s), ${c.preemptions} preemption(s)` +
          `${c.sharing ? `; shared KV (trace v2): prefixes ${c.prefixes.join(',')}, ${c.prefixCache} cache, ${c.forks} fork(s)` : ''}` +
          `${c.positions && c.cadServers === 0 ? `; trace v3: ${v3Bound(c)}` : ''}${c.cadServers > 0 ? `; trace v4: ${cadBound(c)}` : ''}; symmetry ${c.symmetry ? 'on' : 'off'}.`,
      ),
    },
  };
  return (await report.commit(data)).html;
}

const isCount = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
const isStrings = (x: unknown) => Array.isArray(x) && x.every((e) => typeof e === 'string');

/** What makes `x` something other than a shard's --json output (the fields the merge reads), or null. */
export function shardProblem(x: unknown): string | null {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return 'not a JSON object';
  const r = x as Record<string, unknown>;
  if (r.verdict !== 'verified' && r.verdict !== 'violated' && r.verdict !== 'incomplete') return `verdict must be verified, violated or incomplete, got ${JSON.stringify(r.verdict)}`;
  if (r.config === null || typeof r.config !== 'object' || Array.isArray(r.config)) return 'no config';
  const config = r.config as Record<string, unknown>;
  for (const [k, v] of Object.entries(DEFAULT_CONFIG)) {
    const same = v === null ? config[k] === null || typeof config[k] === 'string' : Array.isArray(v) ? Array.isArray(config[k]) : typeof config[k] === typeof v;
    if (!same) return `its config has no ${k} like an exploration's bound`;
  }
  const problems = configProblems(r.config as ExploreConfig);
  if (problems.length) return `its config: ${problems[0]}`;
  for (const k of ['states', 'transitions', 'depth', 'seconds', 'statesPerSecond', 'peakMemoryMiB']) if (!isCount(r[k])) return `${k} must be a number ≥ 0`;
  if (r.events === null || typeof r.events !== 'object' || Array.isArray(r.events) || !Object.values(r.events).every(isCount)) return 'events must map event names to counts';
  if (!isStrings(r.neverEnabled) || !isStrings(r.neverTaken)) return 'neverEnabled and neverTaken must be lists of names';
  if (typeof r.replay !== 'string') return 'no replay command';
  if (r.verdict === 'violated') {
    const f = r.finding as Record<string, unknown> | undefined;
    if (!f || typeof f !== 'object' || typeof f.rule !== 'string' || typeof f.message !== 'string' || !Array.isArray(f.trace)) return 'a violation without its finding (rule, message, trace)';
  }
  return null;
}

