// Internal errors: anything a command did not turn into a verdict or a usage error is pdspec's own fault.
// It is reported in one line with exit code 70 (EXIT.internal), and its stack goes to a crash file, never
// to the terminal and never as exit code 1, which means "a property was violated".
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from './common.ts';

/** Where crash files go: $PDSPEC_CRASH_DIR, or the system's temporary directory. */
function crashDir(): string {
  return process.env.PDSPEC_CRASH_DIR || tmpdir();
}

/**
 * An internal error that a command found and described itself (the engine crashed in a campaign run), with
 * the exception it came from as its cause: the crash file holds both stacks.
 */
export class InternalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InternalError';
  }
}

/** The stack of `err` and of its causes (a few levels: a cause may point back at itself). */
function stackOf(err: unknown, depth = 0): string {
  if (!(err instanceof Error)) return String(err);
  const own = String(err.stack ?? err.message);
  return err.cause === undefined || depth >= 4 ? own : `${own}\n\ncaused by: ${stackOf(err.cause, depth + 1)}`;
}

function describe(err: unknown): { message: string; stack: string } {
  try {
    if (err instanceof Error) return { message: String(err.message).split('\n')[0], stack: stackOf(err) };
    return { message: String(err).split('\n')[0], stack: String(err) };
  } catch {
    return { message: 'an error that cannot be printed', stack: '(unprintable)' };
  }
}

/**
 * Writes the crash file of `err` (argv, versions, the stack) and prints the one line that names it; returns
 * EXIT.internal. If even the file cannot be written, the line says so and still exits 70.
 */
export function reportCrash(command: string, err: unknown, argv: readonly string[] = process.argv.slice(2)): number {
  const { message, stack } = describe(err);
  const file = join(crashDir(), `pdspec-crash-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`);
  const body = [`pdspec ${argv.join(' ')}`, `node ${process.version} on ${process.platform}-${process.arch}`, '', stack, ''].join('\n');
  let where: string;
  try {
    writeFileSync(file, body);
    where = `details in ${file}`;
  } catch {
    where = 'the crash file could not be written';
  }
  console.error(`pdspec ${command}: internal error (not a verdict): ${message}; ${where}`);
  return EXIT.internal;
}

/**
 * Errors that escape every command (a callback that throws, a rejected promise nobody awaits) are internal
 * errors too: exit 70 with a crash file, never Node's default exit code 1 with a stack trace.
 */
export function installCrashHandlers(command: () => string): void {
  const crash = (err: unknown) => {
    process.exitCode = reportCrash(command(), err);
    process.exit();
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}
