// Reading a built-in policy's options. Options arrive from code (numbers, objects) or from the command line
// (strings), so numbers may be numeric strings. Anything else is a one-line error naming the option.
import type { Split } from '../policy-api.ts';

/** A bad option value; loadPolicy turns it into a PolicyLoadError. */
export class PolicyOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyOptionError';
  }
}

export type Options = Readonly<Record<string, unknown>>;

/** Rejects option names the policy does not know (a typo would otherwise be silently ignored). */
export function checkKnownOptions(options: Options, known: readonly string[], policy: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      const list = known.length > 0 ? known.join(', ') : 'none';
      throw new PolicyOptionError(`unknown option '${key}' for policy '${policy}' (known: ${list})`);
    }
  }
}

export function numberOpt(options: Options, key: string, fallback: number, min: number, max = Number.POSITIVE_INFINITY): number {
  const raw = options[key];
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    const range = max === Number.POSITIVE_INFINITY ? `≥ ${min}` : `in ${min}..${max}`;
    throw new PolicyOptionError(`option '${key}' must be a number ${range}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function integerOpt(options: Options, key: string, fallback: number, min: number, max = Number.POSITIVE_INFINITY): number {
  const value = numberOpt(options, key, fallback, min, max);
  if (!Number.isInteger(value)) throw new PolicyOptionError(`option '${key}' must be an integer, got ${JSON.stringify(options[key])}`);
  return value;
}

export function enumOpt<T extends string>(options: Options, key: string, fallback: T, allowed: readonly T[]): T {
  const raw = options[key];
  if (raw === undefined) return fallback;
  if (typeof raw !== 'string' || !(allowed as readonly string[]).includes(raw)) {
    throw new PolicyOptionError(`option '${key}' must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

/** A split given as { prefill, decode } or as the string "prefill:decode" (e.g. "60:40"); undefined if absent. */
export function splitOpt(options: Options, key: string): Split | undefined {
  const raw = options[key];
  if (raw === undefined) return undefined;
  let prefill: unknown;
  let decode: unknown;
  if (typeof raw === 'string') {
    const match = /^\s*(\d+)\s*[:/]\s*(\d+)\s*$/.exec(raw);
    if (match) [prefill, decode] = [Number(match[1]), Number(match[2])];
  } else if (raw !== null && typeof raw === 'object') {
    ({ prefill, decode } = raw as { prefill?: unknown; decode?: unknown });
  }
  const valid = (s: unknown): s is number => typeof s === 'number' && Number.isInteger(s) && s >= 1 && s <= 100;
  if (!valid(prefill) || !valid(decode)) {
    throw new PolicyOptionError(
      `option '${key}' must be a split like "60:40" or { prefill, decode } with integer shares in 1..100, got ${JSON.stringify(raw)}`,
    );
  }
  return { prefill, decode };
}
