// `pdspec examples`: replays every documented example trace (examples/traces/README.md) through the spec
// and shows that each gets the verdict its row documents — the bug zoo caught, the fixed twins accepted.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkFile, type CheckOptions, type Verdict } from '../../spec/checker.ts';
import { EXIT, parseOptions, type Command } from '../common.ts';

export interface ExampleRow {
  file: string;
  shows: string;
  quiescent: boolean;
  /** `--release-within SECONDS` in the flags column: the release deadline the row is checked under. */
  releaseWithin?: number;
  exit: number;
  line?: number;
  rule?: string;
  /** The guard a violation's message names ('—': the refusal names none); absent on other rows. */
  guard?: string;
}

export const EXAMPLES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'traces');

/** The rows of the tables in examples/traces/README.md. */
export function exampleRows(dir = EXAMPLES_DIR): ExampleRow[] {
  return readFileSync(join(dir, 'README.md'), 'utf8')
    .split('\n')
    .filter((l) => /^\| `[^`]+\.jsonl` \|/.test(l))
    .map((l) => {
      const [, file, shows, flags, exit, line, rule, guard] = l.split('|').map((c) => c.trim());
      const within = /--release-within (\S+?)`?(\s|$)/.exec(flags);
      return {
        file: file.replaceAll('`', ''),
        shows,
        quiescent: flags.includes('--quiescent'),
        ...(within ? { releaseWithin: Number(within[1]) } : {}),
        exit: Number(exit),
        ...(line ? { line: Number(line) } : {}),
        ...(rule ? { rule } : {}),
        ...(guard ? { guard } : {}),
      };
    });
}

export function exitOf(v: Verdict): number {
  return v.verdict === 'conforms' ? EXIT.holds : v.verdict === 'violation' ? EXIT.violated : EXIT.badInput;
}

/** The checker's options a row's flags ask for. */
export function rowOptions(row: ExampleRow): CheckOptions {
  return { quiescent: row.quiescent, ...(row.releaseWithin !== undefined ? { releaseWithin: row.releaseWithin } : {}) };
}

/** Whether a verdict is the one the row documents. */
export function matches(row: ExampleRow, v: Verdict): boolean {
  if (exitOf(v) !== row.exit) return false;
  if (v.verdict === 'violation') return v.finding.line === row.line && v.finding.rule === row.rule && (row.guard === undefined || (v.finding.guard ?? '—') === row.guard);
  if (v.verdict === 'bad-input') return v.line === row.line;
  return true;
}

const usage = 'pdspec examples [--json]';

export const examples: Command = {
  name: 'examples',
  summary: 'Replays every documented example trace, the bug zoo among them, and shows each verdict beside the documented one.',
  usage,
  async run(args) {
    const { values } = parseOptions(args, { json: { type: 'boolean' } }, usage);
    const rows = exampleRows();
    const results = [];
    for (const row of rows) {
      const verdict = await checkFile(join(EXAMPLES_DIR, row.file), rowOptions(row));
      results.push({ row, verdict, ok: matches(row, verdict) });
    }
    if (values.json) {
      console.log(JSON.stringify(results.map(({ row, verdict, ok }) => ({ ...row, ok, verdict }))));
    } else {
      const width = Math.max(...rows.map((r) => r.file.length)) + 2;
      console.log(`Replaying ${rows.length} example traces through the reference spec (examples/traces/README.md):\n`);
      for (const { row, verdict, ok } of results) {
        const got =
          verdict.verdict === 'conforms'
            ? `conforms (${verdict.events} events)`
            : verdict.verdict === 'violation'
              ? `violation of ${verdict.finding.rule} at line ${verdict.finding.line}${verdict.finding.guard ? ` (${verdict.finding.guard})` : ''}`
              : `bad input at line ${verdict.line}`;
        console.log(`${ok ? '✓' : '✗'} ${row.file.padEnd(width)}${got.padEnd(66)}${row.shows}`);
      }
      const bad = results.filter((r) => !r.ok).length;
      console.log(`\n${results.length - bad}/${results.length} as documented.${bad ? '' : ' Replay any of them with `npx pdspec conform examples/traces/FILE`.'}`);
    }
    return results.every((r) => r.ok) ? EXIT.holds : EXIT.violated;
  },
};
