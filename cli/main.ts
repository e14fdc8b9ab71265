// The `pdspec` command: dispatches to one module per subcommand.
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

function help(): string {
  return [
    'pdspec — formal model and verification kit for prefill/decode-split LLM serving',
    '',
    'usage: pdspec <command> [options]',
    '',
    'commands:',
    ...Object.keys(commands).map((name) => `  ${name}`),
    '',
    'Run `pdspec <command> --help` for the options of one command.',
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
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name === undefined ? EXIT.badInput : EXIT.holds;
  }
  const load = commands[name];
  if (!load) {
    console.error(`pdspec: unknown command '${name}'\n\n${help()}`);
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
