// The exit-code contract under fuzzing: hostile traces (real traces mutated byte by byte, keys duplicated,
// nesting, junk) always get a verdict — conforms, a violation or bad input naming a line — and never an
// exception; hostile flags on the command line and hostile policy modules always exit 0, 1 or 2 with no
// stack trace, never 70 (an internal error is a bug of pdspec). Short in `npm test`; `npm run campaign` runs
// it long (PDSPEC_FUZZ_RUNS, PDSPEC_FUZZ_CLI_RUNS, PDSPEC_FUZZ_POLICY_RUNS). A failure is replayed with the
// seed and path fast-check prints:
// PDSPEC_FUZZ_SEED=S PDSPEC_FUZZ_PATH=P npx vitest run test/fuzz-exit-codes.test.ts
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkText } from '../spec/checker.ts';

const root = join(import.meta.dirname, '..');
// Relative paths among the hostile values (--report 3, --out x) land here, not in the repository.
const scratch = mkdtempSync(join(tmpdir(), 'pdspec-fuzz-'));
const RUNS = Number(process.env.PDSPEC_FUZZ_RUNS ?? 300);
const CLI_RUNS = Number(process.env.PDSPEC_FUZZ_CLI_RUNS ?? 6);
const SEED = Number(process.env.PDSPEC_FUZZ_SEED ?? 1);
const REPLAY = process.env.PDSPEC_FUZZ_PATH ? { path: process.env.PDSPEC_FUZZ_PATH } : {};

const traces = ['semi-pd-resize.jsonl', 'disaggregated-transfer.jsonl', 'preemption-recompute.jsonl', 'nexus-resize.jsonl'].map((f) => readFileSync(join(root, 'examples', 'traces', f), 'utf8'));

/** One mutation of a trace's text, at a position drawn as a fraction of its length. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), n: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), text: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('{', '}', '[', ']', '"', '\\', ',', ':', '\n', '\uFFFD', '"__proto__":1,', '"ev":"free",', '"t":-1,', '9007199254740993', '1e309', '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[')) }),
  fc.record({ kind: fc.constant('duplicate-line' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(text: string, m: Mutation): string {
  const at = Math.floor(m.at * text.length);
  switch (m.kind) {
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.n);
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at);
    case 'duplicate-line': {
      const lines = text.split('\n');
      const i = Math.floor(m.at * lines.length);
      lines.splice(i, 0, lines[i] ?? '');
      return lines.join('\n');
    }
    case 'truncate':
      return text.slice(0, at);
  }
}

describe('fuzz: hostile traces always get a verdict', () => {
  it(`${RUNS} mutated traces (seed ${SEED}): conforms, a violation, or bad input with a line — never an exception`, () => {
    fc.assert(
      fc.property(fc.constantFrom(...traces), fc.array(mutation, { minLength: 1, maxLength: 6 }), (trace, ms) => {
        const text = ms.reduce(mutate, trace);
        const v = checkText(text);
        expect(['conforms', 'violation', 'bad-input']).toContain(v.verdict);
        if (v.verdict === 'bad-input') {
          expect(v.line).toBeGreaterThanOrEqual(0);
          expect(v.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: RUNS, seed: SEED, ...REPLAY },
    );
  });
});

/** Flag values that are wrong, extreme or odd. */
const hostileValue = fc.constantFrom('0', '-1', '1e309', 'NaN', 'x', '', '99999999999', '3', '0.5', '/dev/null/x', '/proc/x', '{}', '2/1', 'semi-pd,zzz');

const commandLines = fc.oneof(
  fc.tuple(fc.constant(['run', '--workload', 'poisson']), fc.subarray(['--requests', '--duration', '--rate', '--blocks', '--block-size', '--chunk', '--max-batch', '--seed', '--split', '--mode', '--slo', '--trace-out', '--report'], { minLength: 1, maxLength: 3 })),
  fc.tuple(fc.constant(['explore']), fc.subarray(['--requests', '--blocks', '--block-size', '--resizes', '--aborts', '--preemptions', '--max-states', '--workers', '--shard', '--mode', '--out', '--report'], { minLength: 1, maxLength: 3 })),
  fc.tuple(fc.constant(['campaign']), fc.subarray(['--runs', '--seed', '--modes', '--fault', '--path', '--replay-path', '--out', '--policy'], { minLength: 1, maxLength: 3 })),
  fc.tuple(fc.constant(['sweep', '--policy', 'static', '--workload', 'poisson']), fc.subarray(['--rates', '--duration', '--slo', '--seed', '--report'], { minLength: 1, maxLength: 3 })),
  fc.tuple(fc.constantFrom(['monotonicity', 'M2', 'static'], ['monotonicity', 'M1', 'llama3-8b-h100'], ['monotonicity', 'M3', 'static', '{"numRuns":2}']), fc.subarray(['--seed', '--runs', '--json'], { minLength: 1, maxLength: 3 })),
  // check with a policy that cannot load: every flag is parsed and range-checked, and the run ends at the policy.
  fc.tuple(fc.constant(['check', '--policy', './no-such-policy.ts']), fc.subarray(['--budget', '--seed', '--report', '--json', '--self-test'], { minLength: 1, maxLength: 3 })),
);

describe('fuzz: hostile flags exit 0, 1 or 2, never with a stack trace or an internal error', () => {
  it(`${CLI_RUNS} command lines (seed ${SEED})`, () => {
    fc.assert(
      fc.property(commandLines, fc.array(hostileValue, { minLength: 3, maxLength: 3 }), ([base, flags], values) => {
        const args = [...base, ...flags.flatMap((f, i) => [f, values[i]]), ...(base[0] === 'campaign' ? ['--runs', '3'] : [])];
        const r = spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: scratch, encoding: 'utf8', timeout: 60_000 });
        const shown = `pdspec ${args.join(' ')} → ${r.status}\n${r.stderr}`;
        expect([0, 1, 2], shown).toContain(r.status);
        expect(r.stderr, shown).not.toMatch(/\n\s+at /);
      }),
      { numRuns: CLI_RUNS, seed: SEED, ...REPLAY },
    );
  }, 600_000);
});

// Hostile policy modules, generated: a base policy — one M2 must fail (the shipped non-monotone policy's
// panic), or one it must pass — plus one hostile piece, at import or in decide() from its Nth call on: a
// decision no rule allows, a throw, tampering with the module's realm, exiting, signalling, or forging output
// and messages. Whatever the piece, `monotonicity M2`, `check` and `campaign` exit 0, 1 or 2 without a stack
// trace; their --json output stays one JSON object free of the forgery; a piece that faults is bad input once
// reached; and nothing turns the non-monotone base's M2 violation into a pass.
const POLICY_RUNS = Number(process.env.PDSPEC_FUZZ_POLICY_RUNS ?? 4);
const FORGED = 'FORGED-BY-POLICY';

const BASES = {
  // examples/policies/broken/non-monotone.ts's panic (more than 8 waiting requests: prefill 30), keeping the
  // split below it so that check's exploration, with its few requests, never resizes and stays small.
  'non-monotone': '(obs) => (obs.prefillQueue.requests > 8 ? { split: { prefill: 30, decode: 70 } } : {})',
  'keeps-the-split': '() => ({})',
} as const;
type Base = keyof typeof BASES;

/** One hostile piece of code; `faults`: the policy is at fault once it runs (bad input, exit 2). */
interface Piece {
  name: string;
  code: string;
  faults: boolean;
  /** Only inside decide() (a `return`). */
  decideOnly?: boolean;
}

const badDecisions: Record<string, string> = {
  nan: '{ split: { prefill: NaN, decode: 50 } }',
  infinity: '{ split: { prefill: Infinity, decode: 50 } }',
  negative: '{ split: { prefill: -5, decode: 50 } }',
  'over-100': '{ split: { prefill: 150, decode: 50 } }',
  fraction: '{ split: { prefill: 50.5, decode: 49.5 } }',
  string: "'keep the split'",
  'string-shares': "{ split: { prefill: '50', decode: '50' } }",
  bigint: '{ split: { prefill: 50n, decode: 50n } }',
  proxy: "new Proxy({}, { get() { throw new Error('trap'); }, ownKeys() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); } })",
  'throwing-getter': "{ get split() { throw new Error('getter'); } }",
  array: '[50, 50]',
  null: 'null',
  undefined: 'undefined',
  promise: 'Promise.resolve({})',
  'deeply-nested': '(() => { let o = { prefill: 50, decode: 50 }; for (let i = 0; i < 100000; i++) o = { split: o }; return o; })()',
  huge: "Object.fromEntries(Array.from({ length: 200000 }, (_, i) => ['k' + i, 'x'.repeat(16)]))",
};

const throws: Record<string, string> = {
  error: "throw new Error('policy failure');",
  unprintable: "throw { toString() { throw new Error('no'); } };",
  symbol: "throw Symbol('policy');",
};

/** Acts on the module's own realm and process; only exiting and signalling fault. */
const acts: Record<string, { code: string; faults: boolean }> = {
  'array-prototype': { code: 'Array.prototype.find = () => undefined; Array.prototype.some = () => false; Array.prototype.every = () => true;', faults: false },
  'object-prototype': { code: "Object.defineProperty(Object.prototype, 'ok', { get() { return true; }, configurable: true }); Object.prototype.verdict = 'holds';", faults: false },
  json: { code: "JSON.parse = () => ({ verdict: 'holds' }); JSON.stringify = () => '{\"verdict\":\"holds\"}';", faults: false },
  math: { code: 'Math.max = () => 0; Math.min = () => 0;', faults: false },
  'process-exit': { code: 'process.exit(0);', faults: true },
  'process-kill': { code: 'process.kill(process.pid);', faults: true },
  'forged-stdout': { code: `console.log('{"verdict":"holds","note":"${FORGED}"}'); process.stdout.write('${FORGED}\\n');`, faults: false },
  // A forged 'ready' only renames the policy: its name and claim are its own to state (one that does not claim
  // monotonicity is not required to have it), so the claim stays the module's.
  'forged-messages': {
    code: `parentPort?.postMessage({ type: 'ready', name: 'forged-name', claimsMonotone: true, interval: 1, fresh: true }); parentPort?.postMessage({ result: { holds: true, note: '${FORGED}' } }); workerData?.port?.postMessage({ nonce: 'x', reply: { ok: true, decision: {} } });`,
    faults: false,
  },
};

const pieces: Piece[] = [
  ...Object.entries(badDecisions).map(([name, decision]) => ({ name: `returns ${name}`, code: `return ${decision};`, faults: true, decideOnly: true })),
  ...Object.entries(throws).map(([name, code]) => ({ name: `throws ${name}`, code, faults: true })),
  ...Object.entries(acts).map(([name, a]) => ({ name, ...a })),
];

const hostileModule = fc.record({
  base: fc.constantFrom<Base>('non-monotone', 'keeps-the-split'),
  piece: fc.constantFrom(...pieces),
  /** 'import', or the calls of decide() before the piece runs. */
  at: fc.constantFrom<'import' | number>('import', 0, 1, 3, 25),
});
type HostileModule = typeof hostileModule extends fc.Arbitrary<infer M> ? M : never;

function moduleSource(m: HostileModule): string {
  const atImport = m.at === 'import' && !m.piece.decideOnly;
  const after = m.at === 'import' ? 0 : m.at;
  return [
    "import { parentPort, workerData } from 'node:worker_threads';",
    `const base = ${BASES[m.base]};`,
    'let calls = 0;',
    atImport ? m.piece.code : '',
    `export default { name: 'hostile', claimsMonotone: true, decide(obs) { ${atImport ? '' : `if (++calls > ${after}) { ${m.piece.code} }`} return base(obs); } };`,
  ].join('\n');
}

let modules = 0;

/** The contract every command keeps, whatever the module: 0, 1 or 2, no stack trace, --json one clean JSON object. */
function expectContract(r: ReturnType<typeof spawnSync>, shown: string): void {
  expect(r.signal, shown).toBeNull();
  expect([0, 1, 2], shown).toContain(r.status);
  expect(String(r.stderr), shown).not.toMatch(/^\s+at /m);
  const stdout = String(r.stdout);
  expect(stdout, shown).not.toContain(FORGED);
  if (stdout.trim() !== '') expect(() => JSON.parse(stdout), shown).not.toThrow();
}

describe('fuzz: hostile policy modules never turn a violation into a pass', () => {
  it(`${POLICY_RUNS} generated modules (seed ${SEED}) through monotonicity M2, check and campaign`, () => {
    fc.assert(
      fc.property(hostileModule, (m) => {
        modules += 1;
        const file = join(scratch, `hostile-${modules}.ts`);
        writeFileSync(file, moduleSource(m));
        const atImport = m.at === 'import' && !m.piece.decideOnly;
        const label = `${m.base} + ${m.piece.name} ${atImport ? 'at import' : `from call ${m.at === 'import' ? 1 : m.at + 1} of decide`} (${file})`;
        const loadFails = atImport && m.piece.faults;
        const run = (...args: string[]) => {
          const r = spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: scratch, encoding: 'utf8', timeout: 180_000 });
          const shown = `${label}\npdspec ${args.join(' ')} → ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`;
          expectContract(r, shown);
          return { status: r.status, stderr: String(r.stderr), shown };
        };

        const m2 = run('monotonicity', 'M2', file, '--json');
        const check = run('check', '--policy', file, '--budget', '10', '--report', join(scratch, `report-${modules}`), '--json');
        const campaign = run('campaign', '--policy', file, '--modes', 'semi-pd', '--runs', '5', '--seed', '1', '--json');
        if (loadFails) {
          for (const r of [m2, check, campaign]) expect(r.status, r.shown).toBe(2);
        } else if (m.piece.faults) {
          // M2 and check ask the policy far more than 25 times: the piece runs, and a fault is bad input — or,
          // for the non-monotone base, the violation found before it.
          for (const r of [m2, check]) expect(m.base === 'non-monotone' ? [1, 2] : [2], r.shown).toContain(r.status);
          expect([0, 2], campaign.shown).toContain(campaign.status);
        } else {
          for (const r of [m2, check]) expect(r.status, r.shown).toBe(m.base === 'non-monotone' ? 1 : 0);
          expect(campaign.status, campaign.shown).toBe(0);
        }
        // Bad input from a policy names it: a load error or a fault with its observation (check reports its own).
        for (const r of [m2, campaign]) if (r.status === 2) expect(r.stderr, r.shown).toMatch(/cannot load policy '|policy '[^']*' fault \(/);
      }),
      { numRuns: POLICY_RUNS, seed: SEED, ...REPLAY },
    );
  }, 1_200_000);
});
