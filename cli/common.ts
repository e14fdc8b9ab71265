// Shared pieces of the `pdspec` command line: the command shape, usage errors and exit codes.
import { accessSync, constants, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type ParsedResults<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>;

/**
 * Exit codes, the same for every command: 0 holds, 1 a property was violated, 2 bad input or usage, 70 an
 * internal error of pdspec (sysexits' EX_SOFTWARE): never a verdict, so that a script cannot read a crash
 * as a counterexample.
 */
export const EXIT = { holds: 0, violated: 1, badInput: 2, internal: 70 } as const;

/** Bad input or usage: printed as one line, exit code 2, never a stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with unknown options and missing values turned into UsageErrors. */
export function parseOptions<O extends Options>(args: string[], options: O, usage: string): ParsedResults<{ args: string[]; options: O; allowPositionals: true; strict: true }> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]}\nusage: ${usage}`);
  }
}

/** A non-negative integer option, or a UsageError naming it. */
export function intOption(value: string | undefined, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${value}'`);
  if (n > max) throw new UsageError(`--${name} ${value} is beyond the limit of ${max.toLocaleString('en-US')}`);
  return n;
}

/** One shell word of a printed command: as it is when it is plain, else in single quotes (exec:'python3 p.py'). */
export function shellWord(word: string): string {
  return /^[\w./:=,@+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Generated cases or runs one command may be asked for: a million runs of a campaign take hours already. */
export const MAX_RUNS = 10_000_000;
/** The longest `check --budget`: a day. */
export const MAX_BUDGET_SECONDS = 86_400;

/** A finite number option, or a UsageError naming it. */
export function numberOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${value}'`);
  return n;
}

/** An SLO option `TTFT,TPOT` in seconds, or a UsageError naming it. */
export function sloOption(text: string | undefined, fallback: { ttft: number; tpot: number }): { ttft: number; tpot: number } {
  if (text === undefined) return fallback;
  const parts = text.split(',');
  const nums = parts.map(Number);
  if (parts.length !== 2 || !nums.every((n) => Number.isFinite(n) && n > 0)) {
    throw new UsageError(`--slo must be TTFT,TPOT in seconds (e.g. ${fallback.ttft},${fallback.tpot}), got '${text}'`);
  }
  return { ttft: nums[0], tpot: nums[1] };
}

/** A file-system error on a path the user named, as one line: bad input, not a crash. */
function pathError(err: unknown, flag: string, path: string, what: string): UsageError {
  const e = err as NodeJS.ErrnoException;
  const why = e?.code === 'ENOENT' ? 'no such directory' : e?.code === 'EACCES' || e?.code === 'EPERM' ? 'permission denied' : e?.code === 'EROFS' ? 'read-only file system' : e?.code === 'EISDIR' ? 'it is a directory' : e?.code === 'ENOTDIR' ? 'a part of the path is not a directory' : String(e?.code ?? e?.message ?? e);
  return new UsageError(`${flag} ${path}: cannot write ${what} (${why})`);
}

/** Checks, before any work starts, that the output file `path` of `flag` can be written: its directory exists and is writable, and it is not a directory. */
export function checkOutputFile(path: string, flag: string): void {
  const full = resolve(path);
  try {
    if (statSync(full, { throwIfNoEntry: false })?.isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
    accessSync(dirname(full), constants.W_OK);
  } catch (err) {
    throw pathError(err, flag, path, 'the file');
  }
}

/** Creates the output directory `path` of `flag` (and its parents) and checks that it is writable, before any work starts. */
export function checkOutputDir(path: string, flag: string, shown = path): string {
  const full = resolve(path);
  try {
    makeDirs(full);
    if (!statSync(full).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(full, constants.W_OK);
  } catch (err) {
    throw pathError(err, flag, shown, 'into the directory');
  }
  return full;
}

/**
 * `mkdir -p`, one level at a time: Node's recursive mkdir retries forever under a directory that refuses new
 * entries with ENOENT (such as /proc).
 */
function makeDirs(full: string): void {
  const missing: string[] = [];
  for (let p = full; !statSync(p, { throwIfNoEntry: false }); p = dirname(p)) {
    missing.push(p);
    if (dirname(p) === p) break;
  }
  for (let i = missing.length - 1; i >= 0; i--) mkdirSync(missing[i]);
}

/** Writes an output file the user named; a failure is bad input naming the flag. */
export function writeOutputFile(path: string, text: string, flag: string): void {
  try {
    writeFileSync(path, text);
  } catch (err) {
    throw pathError(err, flag, path, 'the file');
  }
}

