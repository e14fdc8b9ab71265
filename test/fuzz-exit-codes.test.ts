// The exit-code contract under fuzzing: hostile traces (real traces mutated byte by byte, keys duplicated,
// nesting, junk) always get a verdict — conforms, a violation or bad input naming a line — and never an
// exception; hostile flags on the command line always exit 0, 1 or 2 with no stack trace, never 70 (an
// internal error is a bug of pdspec). Short in `npm test`; `npm run campaign` runs it long
// (PDSPEC_FUZZ_RUNS, PDSPEC_FUZZ_CLI_RUNS). A failure is replayed with the seed and path fast-check prints:
// PDSPEC_FUZZ_SEED=S PDSPEC_FUZZ_PATH=P npx vitest run test/fuzz-exit-codes.test.ts
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
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
