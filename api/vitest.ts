// `pdspec/vitest`: a matcher that asserts a trace conforms to the spec, in one line of a TypeScript engine's
// own tests (vitest, or Jest: both take the same matcher object).
//
//   import { expect } from 'vitest';
//   import { matchers } from 'pdspec/vitest';
//   expect.extend(matchers);
//
//   expect(traceText).toConform();                       // JSON Lines text
//   expect([header, ...events]).toConform({ quiescent: true });   // or the objects
import { checkText, formatVerdict, type CheckOptions, type Verdict } from '../spec/checker.ts';

/** A trace as text (JSON Lines) or as its lines (objects or JSON text), header first. */
export type TraceInput = string | readonly (Record<string, unknown> | string)[];

function textOf(trace: TraceInput): string {
  if (typeof trace === 'string') return trace;
  if (!Array.isArray(trace)) throw new TypeError('toConform expects a trace: its JSON Lines text, or an array of its lines (header first)');
  return trace.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n');
}

/** The checker's verdict on a trace given as text or lines. */
export function verdictOf(trace: TraceInput, options: CheckOptions = {}): Verdict {
  return checkText(textOf(trace), options);
}

export const matchers = {
  /** Passes when the trace conforms (with `{ quiescent: true }`: and ends at rest); the message is the checker's. */
  toConform(received: TraceInput, options: CheckOptions = {}) {
    const verdict = verdictOf(received, options);
    const pass = verdict.verdict === 'conforms';
    return {
      pass,
      message: () => (pass ? `expected the trace not to conform, but it does: ${formatVerdict('trace', verdict)}` : formatVerdict('trace', verdict)),
    };
  },
};

/** The matcher's type, for `declare module 'vitest' { interface Assertion<T> extends ConformMatchers<T> {} }`. */
export interface ConformMatchers<R = unknown> {
  toConform(options?: CheckOptions): R;
}
