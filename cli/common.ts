// Shared pieces of the `pdspec` command line: the command shape, usage errors and exit codes.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Exit codes, the same for every command: 0 holds, 1 a property was violated, 2 bad input or usage. */
export const EXIT = { holds: 0, violated: 1, badInput: 2 } as const;

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
export function parseOptions<O extends Options>(args: string[], options: O, usage: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]}\nusage: ${usage}`);
  }
}

/** A non-negative integer option, or a UsageError naming it. */
export function intOption(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${value}'`);
  return n;
}

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
