// The rules a decision must follow, checked on every decision whatever ran it (in-process or in a worker).
// docs/policy-api.md lists them with the messages below.
import type { Decision, Observation, Split } from '../policy-api.ts';
import type { FaultKind } from './errors.ts';

export const MIN_SHARE = 1;
export const MAX_SHARE = 100;
export const PREFILL_ORDERS = ['fcfs', 'shortest-prompt-first'] as const;
const DECISION_FIELDS = new Set(['split', 'prefillOrder']);
const SPLIT_FIELDS = new Set(['prefill', 'decode']);

export type Validated = { ok: true; decision: Decision } | { ok: false; kind: FaultKind; detail: string };

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Promise || (typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function')) {
    return 'a Promise';
  }
  return typeof value === 'object' ? 'an object' : `${typeof value} ${printed(value)}`;
}

/** A primitive as JSON, or as String() gives it where JSON has no form (a BigInt, a symbol, a function). */
function printed(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function checkShare(value: unknown, field: 'prefill' | 'decode'): { kind: FaultKind; detail: string } | undefined {
  if (typeof value !== 'number') {
    return { kind: 'malformed', detail: `malformed decision: split.${field} must be a number, got ${typeName(value)}` };
  }
  if (!Number.isFinite(value)) return { kind: 'non-finite', detail: `non-finite share: split.${field} = ${value}` };
  if (!Number.isInteger(value)) return { kind: 'non-integer', detail: `non-integer share: split.${field} = ${value}` };
  if (value < MIN_SHARE || value > MAX_SHARE) {
    return { kind: 'out-of-range', detail: `share out of range ${MIN_SHARE}..${MAX_SHARE}: split.${field} = ${value}` };
  }
  return undefined;
}

/** Whether a split obeys a share rule (each share an integer in 1..100; `exact`: they sum to 100). */
export function splitObeys(split: Split, rule: Observation['shareRule']): boolean {
  const inRange = (s: number) => Number.isInteger(s) && s >= MIN_SHARE && s <= MAX_SHARE;
  return inRange(split.prefill) && inRange(split.decode) && (rule !== 'exact' || split.prefill + split.decode === 100);
}

/**
 * Checks a decision against the rules and returns a fresh, plain copy of it (so that a policy cannot
 * change the decision after returning it), or the first rule it breaks.
 */
export function validateDecision(raw: unknown, shareRule: Observation['shareRule']): Validated {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || typeName(raw) === 'a Promise') {
    const hint = typeName(raw) === 'a Promise' ? ' (decide must be synchronous)' : ' (return {} to keep the split)';
    return { ok: false, kind: 'malformed', detail: `malformed decision: expected an object, got ${typeName(raw)}${hint}` };
  }
  const record = raw as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !DECISION_FIELDS.has(k));
  if (unknown.length > 0) {
    return {
      ok: false,
      kind: 'malformed',
      detail: `malformed decision: unknown field '${unknown[0]}' (allowed: split, prefillOrder)`,
    };
  }
  const decision: Decision = {};
  if (record.split !== undefined) {
    const split = record.split;
    if (split === null || typeof split !== 'object' || Array.isArray(split)) {
      return { ok: false, kind: 'malformed', detail: `malformed decision: split must be { prefill, decode }, got ${typeName(split)}` };
    }
    const splitRecord = split as Record<string, unknown>;
    const extra = Object.keys(splitRecord).filter((k) => !SPLIT_FIELDS.has(k));
    if (extra.length > 0) {
      return { ok: false, kind: 'malformed', detail: `malformed decision: unknown field 'split.${extra[0]}' (allowed: prefill, decode)` };
    }
    const problem = checkShare(splitRecord.prefill, 'prefill') ?? checkShare(splitRecord.decode, 'decode');
    if (problem) return { ok: false, ...problem };
    const prefill = splitRecord.prefill as number;
    const decode = splitRecord.decode as number;
    if (shareRule === 'exact' && prefill + decode !== 100) {
      return {
        ok: false,
        kind: 'share-rule',
        detail: `split ${prefill}/${decode} breaks the exact share rule (prefill + decode must be 100, got ${prefill + decode})`,
      };
    }
    decision.split = { prefill, decode };
  }
  if (record.prefillOrder !== undefined) {
    const order = record.prefillOrder;
    if (!(PREFILL_ORDERS as readonly unknown[]).includes(order)) {
      return {
        ok: false,
        kind: 'malformed',
        detail: `malformed decision: prefillOrder must be 'fcfs' or 'shortest-prompt-first', got ${typeName(order)}`,
      };
    }
    decision.prefillOrder = order as Decision['prefillOrder'];
  }
  return { ok: true, decision };
}
