// `pdspec explore` against SPIN on a Promela model of the same bounded protocol (bench/spin/), in one run.
//
// 1. At a bound both can exhaust without symmetry reduction (default: 2 requests, 4 blocks, 1 resize, 1 abort,
//    1 preemption): SPIN's compiled verifier `pan` and `pdspec explore --no-symmetry` must find the same number
//    of distinct states (and transitions: pan's count is one more, it counts the initial state); then pdspec
//    with symmetry reduction. Raw states per second: pdspec without symmetry ÷ SPIN (goal ≥ 0.1).
// 2. At the largest bound SPIN exhausts here without symmetry reduction (3 requests, 4 blocks, 1 resize, 1 abort,
//    1 preemption: 40.5 million states, about 5 GiB): SPIN, and pdspec with symmetry reduction.
// 3. At the default bound (DEFAULT_CONFIG: 3 requests, 6 blocks, 1 resize, 1 abort, 1 preemption): pdspec with
//    symmetry reduction, and SPIN without it, under a memory and a time cap (pan is stopped at either and
//    reports how far it got). Goal: pdspec's wall time ÷ SPIN's ≤ 1.
//
//   npx tsx bench/explore-vs-spin.ts [--requests N] [--blocks N] [--resizes 0|1] [--aborts N] [--preemptions N]
//        [--prompt N] [--output N] [--block-size N] [--chunk N]      the bound compared without symmetry
//        [--spin-memlim MiB] [--spin-time S]                           SPIN's caps in parts 2 and 3
//        [--skip-large] [--skip-default]                                leave out part 2, part 3
//
// Exit 0: done and the state counts agree; 1: they differ, or a run failed; 2: spin or gcc is missing, or bad usage.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG, type ExploreConfig } from '../properties/explore/config.ts';
import { explore } from '../properties/explore/explorer.ts';
import { boundOf, promelaModel, spinProblems } from './spin/promela.ts';

/** How pan is built: exhaustive safety search (no never claim, no cycle or fairness machinery), no BITSTATE. */
const GCC_FLAGS = ['-O2', '-DSAFETY', '-DNOFAIR'];
const DEPTH = 10_000; // pan -m: the longest path of this protocol is < 100 steps; pan says so if it is ever too small

interface Row {
  tool: string;
  symmetry: boolean;
  bound: string;
  verdict: string;
  states: number;
  transitions: number;
  /** spin -a + gcc (SPIN only). */
  compileSeconds?: number;
  seconds: number;
  note?: string;
}

function usage(): never {
  console.error(
    'usage: npx tsx bench/explore-vs-spin.ts [--requests N] [--blocks N] [--resizes 0|1] [--aborts N] [--preemptions N]\n' +
      '         [--prompt N] [--output N] [--block-size N] [--chunk N] [--spin-memlim MiB] [--spin-time S] [--skip-large] [--skip-default]',
  );
  process.exit(2);
}

function parseArgs(argv: string[]) {
  const matched: ExploreConfig = { ...DEFAULT_CONFIG, requests: 2, blocks: 4, resizes: 1, aborts: 1, preemptions: 1 };
  const fields: Record<string, keyof ExploreConfig> = {
    '--requests': 'requests',
    '--blocks': 'blocks',
    '--resizes': 'resizes',
    '--aborts': 'aborts',
    '--preemptions': 'preemptions',
    '--prompt': 'prompt',
    '--output': 'output',
    '--block-size': 'blockSize',
    '--chunk': 'chunk',
  };
  let memlim = 12288;
  let timeLimit = 300;
  let skipDefault = false;
  let skipLarge = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--skip-default') skipDefault = true;
    else if (a === '--skip-large') skipLarge = true;
    else if (a === '--help' || a === '-h') usage();
    else {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) usage();
      if (a === '--spin-memlim') memlim = v;
      else if (a === '--spin-time') timeLimit = v;
      else if (fields[a]) (matched as unknown as Record<string, number>)[fields[a]] = v;
      else usage();
    }
  }
  return { matched, memlim, timeLimit, skipDefault, skipLarge };
}

function describe(c: ExploreConfig): string {
  return `${c.requests}r ${c.blocks}b ${c.resizes}z ${c.aborts}a ${c.preemptions}p` + (c.prompt !== 2 || c.output !== 2 || c.blockSize !== 2 || c.chunk !== 2 ? ` (prompt ${c.prompt}, output ${c.output}, T ${c.blockSize}, chunk ${c.chunk})` : '');
}

/** A tool on PATH, or null. */
function have(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error;
}

function runPdspec(config: ExploreConfig): Row {
  const t0 = performance.now();
  const r = explore({ ...config, maxStates: 50_000_000 });
  const seconds = (performance.now() - t0) / 1000;
  return {
    tool: 'pdspec explore',
    symmetry: config.symmetry,
    bound: describe(config),
    verdict: r.verdict + (r.finding ? ` (${r.finding.rule})` : ''),
    states: r.states,
    transitions: r.transitions,
    seconds,
  };
}

interface PanResult {
  row: Row;
  complete: boolean;
  stoppedBy: 'memory' | 'time' | null;
  vector: number;
  depth: number;
  memoryMiB: number;
  flags: string;
}

/** Generates the model at the bound, runs spin -a, compiles pan, runs it (stopped with SIGINT after timeLimit seconds). */
async function runSpin(config: ExploreConfig, o: { memlimMiB: number; timeLimit: number; hashBits: number; label?: string }): Promise<PanResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pdspec-spin-'));
  try {
    writeFileSync(join(dir, 'pdspec.pml'), promelaModel(boundOf(config)));
    const t0 = performance.now();
    const a = spawnSync('spin', ['-a', 'pdspec.pml'], { cwd: dir, encoding: 'utf8' });
    if (a.status !== 0) throw new Error(`spin -a failed:\n${a.stdout}${a.stderr}`);
    const gccFlags = [...GCC_FLAGS, `-DMEMLIM=${o.memlimMiB}`];
    const g = spawnSync('gcc', [...gccFlags, '-o', 'pan', 'pan.c'], { cwd: dir, encoding: 'utf8' });
    if (g.status !== 0) throw new Error(`gcc failed:\n${g.stderr}`);
    const compileSeconds = (performance.now() - t0) / 1000;
    const panArgs = [`-m${DEPTH}`, `-w${o.hashBits}`];
    const t1 = performance.now();
    const { out, timedOut } = await new Promise<{ out: string; timedOut: boolean }>((resolve, reject) => {
      const p = spawn('./pan', panArgs, { cwd: dir });
      let out = '';
      let timedOut = false;
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      const timer = o.timeLimit > 0 ? setTimeout(() => ((timedOut = true), p.kill('SIGINT')), o.timeLimit * 1000) : null;
      p.on('error', reject);
      p.on('close', () => {
        if (timer) clearTimeout(timer);
        resolve({ out, timedOut });
      });
    });
    const seconds = (performance.now() - t1) / 1000;
    const num = (re: RegExp) => {
      const m = re.exec(out);
      if (!m) throw new Error(`could not read pan's output (${re}):\n${out}`);
      return Number(m[1]);
    };
    const states = num(/([\d.e+]+) states, stored/);
    const transitions = num(/([\d.e+]+) transitions \(= stored\+matched\)/);
    const errors = num(/errors: (\d+)/);
    if (/max search depth too small/.test(out)) throw new Error(`pan -m${DEPTH} is too small:\n${out}`);
    const memory = /reached -DMEMLIM bound/.test(out);
    const complete = !/Search not completed/.test(out);
    const verdict = errors > 0 ? `violated (${/pan:\d+: (.*)/.exec(out)?.[1] ?? 'error'})` : complete ? 'verified' : `incomplete (${memory ? `memory cap ${o.memlimMiB} MiB` : `time cap ${o.timeLimit} s`})`;
    return {
      row: {
        tool: o.label ?? 'SPIN pan',
        symmetry: false,
        bound: describe(config),
        verdict,
        states,
        transitions,
        compileSeconds,
        seconds,
      },
      complete: complete && errors === 0,
      stoppedBy: complete ? null : memory ? 'memory' : timedOut ? 'time' : null,
      vector: num(/State-vector (\d+) byte/),
      depth: num(/depth reached (\d+)/),
      memoryMiB: num(/([\d.]+)\s+total actual memory usage/),
      flags: `spin -a; gcc ${gccFlags.join(' ')}; pan ${panArgs.join(' ')}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en');
}

function printTable(rows: Row[]) {
  const head = ['tool', 'symmetry', 'bound', 'verdict', 'distinct states', 'transitions', 'compile s', 'wall s', 'states/s'];
  const body = rows.map((r) => [
    r.tool,
    r.symmetry ? 'on' : 'off',
    r.bound,
    r.verdict,
    fmtInt(r.states),
    fmtInt(r.transitions),
    r.compileSeconds === undefined ? '-' : r.compileSeconds.toFixed(2),
    r.seconds.toFixed(2),
    fmtInt(r.states / r.seconds),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i >= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + widths.map((w, i) => (i >= 4 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|');
  for (const b of body) console.log(line(b));
}

async function main() {
  const { matched, memlim, timeLimit, skipDefault, skipLarge } = parseArgs(process.argv.slice(2));
  const missing = [have('spin', ['-V']) ? null : 'spin (Debian package spin)', have('gcc', ['--version']) ? null : 'gcc'].filter(Boolean);
  if (missing.length) {
    console.log(`explore-vs-spin: ${missing.join(' and ')} not found on PATH; the SPIN peer benchmark cannot run`);
    process.exit(2);
  }
  const problems = [...spinProblems(matched), ...(skipDefault ? [] : spinProblems(DEFAULT_CONFIG))];
  if (problems.length) {
    console.log(`explore-vs-spin: ${problems.join('; ')}`);
    process.exit(2);
  }
  const spinVersion = spawnSync('spin', ['-V'], { encoding: 'utf8' }).stdout.trim();
  const gccVersion = spawnSync('gcc', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  console.log(`${spinVersion}; ${gccVersion}; node ${process.version}`);
  let failed = false;
  const rows: Row[] = [];

  // ---- 1. the bound both exhaust without symmetry reduction
  console.log(`\n== bound compared without symmetry reduction: ${describe(matched)}`);
  const pdNoSym = runPdspec({ ...matched, symmetry: false });
  const pdSym = runPdspec({ ...matched, symmetry: true });
  const hashBits = Math.min(28, Math.max(18, Math.ceil(Math.log2(pdNoSym.states)) + 1));
  const spin = await runSpin(matched, { memlimMiB: memlim, timeLimit: 0, hashBits });
  rows.push(spin.row, pdNoSym, pdSym);
  printTable([spin.row, pdNoSym, pdSym]);
  console.log(`pan: ${spin.flags}; state vector ${spin.vector} bytes, DFS depth ${spin.depth}, ${spin.memoryMiB.toFixed(0)} MiB`);
  const statesEqual = spin.row.states === pdNoSym.states;
  const transitionsEqual = spin.row.transitions - 1 === pdNoSym.transitions;
  console.log(
    `distinct states without symmetry: SPIN ${fmtInt(spin.row.states)}, pdspec ${fmtInt(pdNoSym.states)}: ${statesEqual ? 'equal' : `DIFFER by ${fmtInt(spin.row.states - pdNoSym.states)}`}; ` +
      `transitions: SPIN ${fmtInt(spin.row.transitions)} (it counts the initial state) − 1 ${transitionsEqual ? '=' : '≠'} pdspec ${fmtInt(pdNoSym.transitions)}`,
  );
  if (!statesEqual || !transitionsEqual || !spin.complete || !pdNoSym.verdict.startsWith('verified')) failed = true;
  const spinRate = spin.row.states / spin.row.seconds;
  const rawRatio = pdNoSym.states / pdNoSym.seconds / spinRate;
  const matchedWallRatio = pdSym.seconds / spin.row.seconds;
  console.log(`pdspec (symmetry) wall / SPIN (no symmetry) wall at this bound: ${pdSym.seconds.toFixed(2)} / ${spin.row.seconds.toFixed(2)} = ${matchedWallRatio.toFixed(2)}` + ` (with pan's compile time: ${(pdSym.seconds / (spin.row.seconds + spin.row.compileSeconds!)).toFixed(2)})`);
  console.log(`GOAL raw states/s, pdspec (no symmetry) ÷ SPIN: ${fmtInt(pdNoSym.states / pdNoSym.seconds)} / ${fmtInt(spinRate)} = ${rawRatio.toFixed(3)}   goal ≥ 0.1: ${rawRatio >= 0.1 ? 'met' : 'NOT met'}`);

  // pan's memory: the cap, but never more than most of what is free now; a hash table of an eighth of it.
  const capped = () => {
    const cap = Math.min(memlim, Math.floor((freemem() / 2 ** 20) * 0.8));
    return { memlimMiB: cap, timeLimit, hashBits: Math.min(28, Math.max(20, Math.floor(Math.log2((cap * 2 ** 20) / 8 / 8)))) };
  };

  // ---- 2. the largest bound SPIN exhausts here without symmetry reduction: SPIN against pdspec with it
  let largeRatio: number | null = null;
  if (!skipLarge) {
    const large: ExploreConfig = { ...DEFAULT_CONFIG, requests: 3, blocks: 4, resizes: 1, aborts: 1, preemptions: 1 };
    console.log(`\n== largest bound SPIN exhausts here without symmetry reduction: ${describe(large)}`);
    const spinLarge = await runSpin(large, capped());
    const pdLarge = runPdspec({ ...large, symmetry: true });
    printTable([spinLarge.row, pdLarge]);
    console.log(`pan: ${spinLarge.flags}; state vector ${spinLarge.vector} bytes, DFS depth ${spinLarge.depth}, ${spinLarge.memoryMiB.toFixed(0)} MiB`);
    rows.push(spinLarge.row, pdLarge);
    if (spinLarge.complete) {
      largeRatio = pdLarge.seconds / spinLarge.row.seconds;
      console.log(`pdspec (symmetry) wall / SPIN (no symmetry) wall at this bound: ${pdLarge.seconds.toFixed(2)} / ${spinLarge.row.seconds.toFixed(2)} = ${largeRatio.toFixed(3)}`);
    } else console.log(`SPIN did not finish this bound under its caps (${spinLarge.row.verdict}); raise --spin-memlim`);
    if (!pdLarge.verdict.startsWith('verified') || spinLarge.row.verdict.startsWith('violated')) failed = true;
  }

  // ---- 3. the default bound: pdspec with symmetry reduction against SPIN without it
  if (!skipDefault) {
    const dflt: ExploreConfig = { ...DEFAULT_CONFIG };
    console.log(`\n== default bound (DEFAULT_CONFIG): ${describe(dflt)}`);
    const pdDefault = runPdspec({ ...dflt, symmetry: true });
    const spinDefault = await runSpin(dflt, capped());
    printTable([spinDefault.row, pdDefault]);
    console.log(`pan: ${spinDefault.flags}; state vector ${spinDefault.vector} bytes, ${spinDefault.memoryMiB.toFixed(0)} MiB`);
    // The symmetry group permutes requests and blocks: each key stands for at most R! × B! states.
    const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));
    const orbitBound = fact(dflt.requests) * fact(dflt.blocks) * pdDefault.states;
    console.log(
      `pdspec without symmetry at this bound: not run (at least the ${fmtInt(spinDefault.row.states)} states SPIN stored, at most ${dflt.requests}! × ${dflt.blocks}! × ${fmtInt(pdDefault.states)} = ${fmtInt(orbitBound)}; see bench/spin/README.md)`,
    );
    rows.push(spinDefault.row, pdDefault);
    const ratio = pdDefault.seconds / spinDefault.row.seconds;
    if (spinDefault.complete) {
      console.log(`GOAL pdspec (symmetry) wall / SPIN (no symmetry) wall at the default bound: ${pdDefault.seconds.toFixed(2)} / ${spinDefault.row.seconds.toFixed(2)} = ${ratio.toFixed(3)}   goal ≤ 1: ${ratio <= 1 ? 'met' : 'NOT met'}`);
    } else {
      console.log(
        `SPIN cannot exhaust the default bound here: stopped at its ${spinDefault.stoppedBy ?? 'cap'} cap after ${spinDefault.row.seconds.toFixed(0)} s with ${fmtInt(spinDefault.row.states)} states stored and the search unfinished.`,
      );
      console.log(
        `GOAL pdspec (symmetry) wall / SPIN (no symmetry) wall at the default bound: < ${pdDefault.seconds.toFixed(2)} / ${spinDefault.row.seconds.toFixed(2)} = ${ratio.toFixed(3)} (SPIN's full time is longer than the time it ran)   goal ≤ 1: ${ratio <= 1 ? 'met' : 'undecided'}`,
      );
      console.log(
        `largest bounds both exhaust: without symmetry on both sides ${describe(matched)} (ratio ${matchedWallRatio.toFixed(2)})` +
          (largeRatio === null ? '' : `; SPIN without, pdspec with symmetry 3r 4b 1z 1a 1p (ratio ${largeRatio.toFixed(3)})`),
      );
    }
    if (!pdDefault.verdict.startsWith('verified') || spinDefault.row.verdict.startsWith('violated')) failed = true;
  }
  process.exit(failed ? 1 : 0);
}

await main();
