// `pdspec explore`: exhaustive bounded model checking of the spec.
import { configProblems, DEFAULT_CONFIG, type ExploreConfig } from '../../properties/explore/config.ts';
import { formatEvent, writeCounterexample } from '../../properties/explore/counterexample.ts';
import { explore, type ExploreResult } from '../../properties/explore/explorer.ts';
import { VARIANTS } from '../../properties/explore/variants.ts';
import { MODES, ALLOCATORS } from '../../spec/trace-format.ts';
import { EXIT, intOption, parseOptions, UsageError, type Command } from '../common.ts';

const usage = [
  'pdspec explore [--requests N] [--prompt N] [--output N] [--blocks N] [--block-size N] [--chunk N]',
  '               [--resizes N] [--aborts N] [--preemptions N] [--mode MODE] [--allocator lock|decode-owned]',
  '               [--alloc-steps auto|one|three] [--no-symmetry] [--variant NAME] [--max-states N]',
  '               [--out cex.jsonl] [--json]',
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
  variant: { type: 'string' },
  'max-states': { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export function configFromArgs(values: Record<string, string | boolean | undefined>): ExploreConfig {
  const d = DEFAULT_CONFIG;
  const mode = (values.mode as string | undefined) ?? d.mode;
  if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}`);
  const allocator = (values.allocator as string | undefined) ?? d.allocator;
  if (!(ALLOCATORS as readonly string[]).includes(allocator)) throw new UsageError(`--allocator must be one of ${ALLOCATORS.join(', ')}`);
  const allocSteps = (values['alloc-steps'] as string | undefined) ?? d.allocSteps;
  if (!['auto', 'one', 'three'].includes(allocSteps)) throw new UsageError('--alloc-steps must be auto, one or three');
  const variant = (values.variant as string | undefined) ?? null;
  if (variant !== null && !VARIANTS[variant]) throw new UsageError(`unknown variant '${variant}' (variants: ${Object.keys(VARIANTS).join(', ')})`);
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
    chunk: int('chunk', Math.max(d.chunk, prompt), 1),
    resizes,
    aborts: int('aborts', d.aborts, 0),
    preemptions: int('preemptions', d.preemptions, 0),
    splits: mode === 'nexus' ? [{ prefill: 70, decode: 30 }] : d.splits,
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
    `${c.resizes} resize(s)`,
    `${c.aborts} abort(s)`,
    `${c.preemptions} preemption(s)`,
    `${c.allocator} allocator`,
    `symmetry ${c.symmetry ? 'on' : 'off'}`,
    ...(c.variant ? [`variant ${c.variant} (${VARIANTS[c.variant].zoo}: ${VARIANTS[c.variant].says})`] : []),
  ].join(', ');
}

export function replayCommand(args: string[]): string {
  return ['npx pdspec explore', ...args.filter((a, i) => a !== '--json' && a !== '--out' && args[i - 1] !== '--out')].join(' ');
}

function humanReport(r: ExploreResult, out: string | undefined, replay: string): string {
  const lines = [`pdspec explore: ${describeBound(r.config)}`];
  const stats = `${r.states.toLocaleString('en')} distinct states, ${r.transitions.toLocaleString('en')} transitions, depth ${r.depth}, ${r.seconds.toFixed(1)} s (${Math.round(r.statesPerSecond).toLocaleString('en')} states/s), peak heap ${Math.round(r.peakHeapMiB)} MiB`;
  if (r.verdict === 'verified') lines.push(`verified at this bound: ${stats}`);
  else if (r.verdict === 'incomplete') lines.push(`incomplete: stopped at --max-states ${r.config.maxStates}; ${stats}`);
  else {
    const f = r.finding!;
    lines.push(`violation of ${f.rule}: ${f.message}`);
    lines.push(`${stats}`);
    lines.push(f.kind === 'starvation' ? `counterexample (${f.trace.length} events; the last ${f.cycle} repeat forever):` : `shortest counterexample (${f.trace.length} events):`);
    f.trace.forEach((ev, i) => lines.push(`  ${String(i + 1).padStart(3)}  ${formatEvent(ev)}${f.cycle && i === f.trace.length - f.cycle ? '   ← the cycle starts here' : ''}`));
    if (out) lines.push(`written to ${out} (trace v1) — check it with: npx pdspec conform ${out}`);
    lines.push(`reproduce: ${replay}`);
  }
  // Coverage means something only for a search that went through the whole bound.
  if (r.verdict === 'verified') {
    if (r.neverEnabled.length) lines.push(`events never enabled at this bound: ${r.neverEnabled.join(', ')}`);
    if (r.neverTaken.length) lines.push(`machine transitions never taken at this bound (${r.neverTaken.length}): ${r.neverTaken.join(', ')}`);
  }
  return lines.join('\n');
}

export const exploreCommand: Command = {
  name: 'explore',
  summary: [
    'Explores every interleaving of the spec at a bound: every reached state is checked against every invariant,',
    'deadlocks and (weakly fair) starvation cycles are searched for; a violation comes back as the shortest',
    `counterexample, written as a trace v1 file. Variants reintroduce bug-zoo mechanisms: ${Object.keys(VARIANTS).join(', ')}.`,
    'Exit 0: verified at the bound; 1: a violation; 2: bad configuration.',
  ].join('\n'),
  usage,
  async run(args) {
    const { values, positionals } = parseOptions(args, options, usage);
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    const config = configFromArgs(values);
    const problems = configProblems(config);
    if (problems.length) throw new UsageError(problems.join('\n'));
    const tty = process.stderr.isTTY && !process.env.CI && !values.json;
    const result = explore(config, {
      progress: tty ? (n, d) => process.stderr.write(`\r  ${n.toLocaleString('en')} states, depth ${d}   `) : undefined,
    });
    if (tty) process.stderr.write('\r\x1b[K');
    const replay = replayCommand(args);
    const out = values.out as string | undefined;
    if (result.finding && out) writeCounterexample(out, config, result.finding, replay);
    if (values.json) console.log(JSON.stringify({ ...result, replay, ...(out && result.finding ? { out } : {}) }));
    else console.log(humanReport(result, out, replay));
    if (result.verdict === 'incomplete') {
      if (!values.json) console.error(`the bound is too large for --max-states ${config.maxStates}: lower --requests, --blocks or --resizes, or raise --max-states`);
      return EXIT.badInput;
    }
    return result.verdict === 'verified' ? EXIT.holds : EXIT.violated;
  },
};
