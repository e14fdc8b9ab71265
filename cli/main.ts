// The `pdspec` command: dispatches to one module per subcommand.
import { EXIT, UsageError, type Command } from './common.ts';

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
    'Exit codes: 0 holds, 1 a property was violated, 2 bad input or usage.',
  ].join('\n');
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
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${command.summary}\n\nusage: ${command.usage}`);
    return EXIT.holds;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`pdspec ${name}: ${err.message}`);
      return EXIT.badInput;
    }
    throw err;
  }
}
