// The `pdspec` command: dispatches to one module per subcommand.
import { existsSync, readFileSync } from 'node:fs';
import { EXIT, UsageError, type Command } from './common.ts';
import { installCrashHandlers, reportCrash } from './crash.ts';

const commands: Record<string, () => Promise<Command>> = {
  campaign: async () => (await import('./commands/campaign.ts')).campaign,
  check: async () => (await import('./commands/check.ts')).check,
  conform: async () => (await import('./commands/conform.ts')).conform,
  diagram: async () => (await import('./commands/diagram.ts')).diagram,
  docs: async () => (await import('./commands/docs.ts')).docs,
  examples: async () => (await import('./commands/examples.ts')).examples,
  explore: async () => (await import('./commands/explore.ts')).exploreCommand,
  doctor: async () => (await import('./commands/doctor.ts')).doctor,
  generate: async () => (await import('./commands/generate.ts')).generate,
  monotonicity: async () => (await import('./commands/monotonicity.ts')).monotonicity,
  run: async () => (await import('./commands/run.ts')).run,
  sweep: async () => (await import('./commands/sweep.ts')).sweep,
};

/** One line per command for the top-level help (each command's own --help says the rest). */
const SUMMARIES: Record<string, string> = {
  campaign: 'the lockstep property campaign of the engine against the spec',
  check: 'verify policies end to end and write the report',
  conform: "replay another engine's trace through the spec",
  diagram: 'the machines as Mermaid state diagrams',
  docs: 'regenerate (or check) the parts of docs/ generated from the definitions',
  examples: 'replay every documented example trace',
  explore: 'exhaustive bounded model checking of the spec',
  doctor: 'the WebGPU adapter, backend and limits, or how to get one',
  generate: 'greedy token ids of one prompt on the shipped llama2.c model',
  monotonicity: 'one SLO-policy monotonicity property (M1, M2, M3)',
  run: 'one simulated or computed run, with its metrics and trace',
  sweep: 'SLO attainment and goodput against request rate',
};

/** The package's version: its package.json is the first one above this file (cli/ in the sources, dist/cli/ in the package). */
export function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    const url = new URL(up, import.meta.url);
    if (!existsSync(url)) continue;
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'pdspec' && typeof pkg.version === 'string') return pkg.version;
  }
  return 'unknown';
}

function help(): string {
  return [
    'pdspec — formal model and verification kit for prefill/decode-split LLM serving',
    '',
    'usage: pdspec <command> [options]',
    '       pdspec --help | --version',
    '',
    'commands:',
    ...Object.keys(commands).map((name) => `  ${name.padEnd(13)} ${SUMMARIES[name] ?? ''}`.trimEnd()),
    '',
    'Run `pdspec <command> --help` (or `pdspec help <command>`) for the options of one command.',
    'Exit codes: 0 holds, 1 a property was violated, 2 bad input or usage, 70 an internal error (a crash file holds the stack).',
  ].join('\n');
}

/** The command being run, for the line of an internal error that escapes it. */
let current = 'pdspec';

/** Runs the CLI as a process: internal errors anywhere, even outside the command's promise, exit 70. */
export async function mainProcess(argv: string[]): Promise<number> {
  installCrashHandlers(() => current);
  return main(argv);
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...others] = argv;
  if (first === '--version' || first === '-V' || first === 'version') {
    console.log(`pdspec ${packageVersion()}`);
    return EXIT.holds;
  }
  // `pdspec help COMMAND` is `pdspec COMMAND --help`.
  const [name, rest] = first === 'help' && others.length > 0 ? [others[0], ['--help']] : [first, others];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    // No command at all is a usage error: the help goes to standard error, exit 2.
    if (name === undefined) console.error(help());
    else console.log(help());
    return name === undefined ? EXIT.badInput : EXIT.holds;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) {
    console.error(name.startsWith('-') ? `pdspec: unknown option '${name}' (try pdspec --help)` : `pdspec: unknown command '${name}' (try pdspec --help)`);
    return EXIT.badInput;
  }
  current = name;
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${command.summary}\n\nusage: ${command.usage}`);
    return EXIT.holds;
  }
  return runCommand(command, rest);
}

/** Runs one command: a usage error is bad input (2), anything else that escapes it an internal error (70). */
export async function runCommand(command: Command, args: string[]): Promise<number> {
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`pdspec ${command.name}: ${err.message}`);
      return EXIT.badInput;
    }
    return reportCrash(command.name, err, [command.name, ...args]);
  }
}
