// `pdspec conform TRACE.jsonl`: replays a trace through the spec and gives the verdict.
import { checkFile, formatVerdict, type Verdict } from '../../spec/checker.ts';
import { EXIT, parseOptions, UsageError, type Command } from '../common.ts';

const usage = 'pdspec conform TRACE.jsonl|- [--quiescent] [--json]   (- reads the trace from standard input)';

export function exitCodeOf(v: Verdict): number {
  return v.verdict === 'conforms' ? EXIT.holds : v.verdict === 'violation' ? EXIT.violated : EXIT.badInput;
}

export const conform: Command = {
  name: 'conform',
  summary: [
    'Replays a trace (format v1 or v2, JSON Lines) through the reference spec.',
    'Exit 0: every event allowed, every invariant held, and the trace ends consistent (with --quiescent: every',
    'request ended and every block free). Exit 1: the first offending line, the guard or invariant that failed,',
    'the ids involved and the longest conforming prefix. Exit 2: unreadable input, with its line number.',
  ].join('\n'),
  usage,
  async run(args) {
    const { values, positionals } = parseOptions(args, { quiescent: { type: 'boolean' }, json: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one trace file, got ${positionals.length}\nusage: ${usage}`);
    const path = positionals[0];
    const verdict = await checkFile(path, { quiescent: values.quiescent });
    const name = path === '-' ? '(stdin)' : path;
    if (values.json) console.log(JSON.stringify({ file: name, ...verdict }));
    else (verdict.verdict === 'conforms' ? console.log : console.error)(formatVerdict(name, verdict));
    return exitCodeOf(verdict);
  },
};
