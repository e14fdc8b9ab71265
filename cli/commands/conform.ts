// `pdspec conform TRACE.jsonl`: replays a trace through the spec and gives the verdict.
import { checkFile, formatVerdict, type Verdict } from '../../spec/checker.ts';
import { EXIT, parseOptions, UsageError, type Command } from '../common.ts';

const usage = 'pdspec conform TRACE.jsonl|- [--quiescent] [--release-within SECONDS] [--json]   (- reads the trace from standard input)';

/** `--release-within SECONDS`: a finite number ≥ 0, or a UsageError of one line. */
export function releaseWithinOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\s*(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--release-within must be a number of seconds ≥ 0 (e.g. 30), got '${text}'`);
  return n;
}

export function exitCodeOf(v: Verdict): number {
  return v.verdict === 'conforms' ? EXIT.holds : v.verdict === 'violation' ? EXIT.violated : EXIT.badInput;
}

export const conform: Command = {
  name: 'conform',
  summary: [
    'Replays a trace (format v1, v2 or v3, JSON Lines) through the reference spec.',
    'Exit 0: every event allowed, every invariant held, and the trace ends consistent (with --quiescent: every',
    'request ended and every block free). Exit 1: the first offending line, the guard or invariant that failed,',
    'the ids involved and the longest conforming prefix. Exit 2: unreadable input, with its line number.',
    'With --release-within SECONDS (or a v3 header\'s releaseWithin), every ended request must free all it held',
    'within that many seconds of its end or of its last step or transfer\'s completion (ReleaseWithin), reported at',
    'the first event past the deadline; a v3 trace\'s `idle` events are judged as at-rest points as they come.',
  ].join('\n'),
  usage,
  async run(args) {
    // `--release-within -1` would read as an option of its own: join the value, so that its check names it.
    const joined = args.map((a, i) => (args[i - 1] === '--release-within' ? null : a === '--release-within' && i + 1 < args.length ? `${a}=${args[i + 1]}` : a)).filter((a) => a !== null);
    const { values, positionals } = parseOptions(joined, { quiescent: { type: 'boolean' }, 'release-within': { type: 'string' }, json: { type: 'boolean' } }, usage);
    const releaseWithin = releaseWithinOption(values['release-within']);
    if (positionals.length !== 1) throw new UsageError(`expected one trace file, got ${positionals.length}\nusage: ${usage}`);
    const path = positionals[0];
    const verdict = await checkFile(path, { quiescent: values.quiescent, ...(releaseWithin !== undefined ? { releaseWithin } : {}) });
    const name = path === '-' ? '(stdin)' : path;
    if (values.json) console.log(JSON.stringify({ file: name, ...verdict }));
    else (verdict.verdict === 'conforms' ? console.log : console.error)(formatVerdict(name, verdict));
    return exitCodeOf(verdict);
  },
};
