// The trace checker: replays a trace v1 through the system spec, one line at a time, in constant memory
// beyond the live state. The verdict names the first line the spec does not allow, the guard or invariant
// that failed, the ids involved and the longest prefix that conformed.
import { createReadStream } from 'node:fs';
import { checkAtRest, checkBlock, checkQuiescent, checkRequest, checkWorker, RULES, type InvariantName, type Violation } from './invariants.ts';
import type { Refusal } from './machine-kit.ts';
import { strictJsonProblem } from './strict-json.ts';
import { System, type SystemOptions } from './system.ts';
import { FormatError, readEvent, readHeader, type TraceEvent, type TraceHeader } from './trace-format.ts';


/** The longest trace line read (16 MiB of text: a step of tens of thousands of requests fits). */
export const MAX_LINE_CHARS = 1 << 24;

export interface Finding {
  /** 1-based line of the offending event; for an at-rest finding, the line after the last. */
  line: number;
  /** The event's text, or "(end of trace)". */
  event: string;
  rule: InvariantName;
  family: string;
  /** `guard`: the event was refused; `invariant`: it was allowed but broke a state invariant; `at-rest`: the trace ended inconsistent. */
  kind: 'guard' | 'invariant' | 'at-rest';
  machine?: string;
  state?: string;
  guard?: string;
  message: string;
}

export type Verdict =
  | { verdict: 'conforms'; lines: number; events: number; requests: number; ended: number; quiescent: boolean }
  | { verdict: 'violation'; lines: number; events: number; conformingPrefix: number; finding: Finding }
  | { verdict: 'bad-input'; line: number; message: string };

export interface CheckOptions {
  /** Also require quiescence at the end: every request ended, nothing in flight, every block free. */
  quiescent?: boolean;
  system?: SystemOptions;
}

class BadInput extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

/** Replays lines fed one at a time. */
export class TraceChecker {
  sys: System | null = null;
  header: TraceHeader | null = null;
  lines = 0;
  events = 0;
  private lastTime = 0;
  private finding: Finding | null = null;

  constructor(private readonly options: CheckOptions = {}) {}

  get done(): boolean {
    return this.finding !== null;
  }

  /** Feeds one line (without its newline). Throws BadInput for unreadable input. */
  feed(text: string): void {
    this.lines++;
    const line = this.lines;
    if (this.finding) return;
    // A blank line carries nothing (only whitespace lines are blank; trim only those).
    if (text.length === 0 || (text.charCodeAt(0) <= 32 && text.trim() === '')) {
      if (this.sys === null) throw new BadInput(line, `the first line must be the header, got an empty line`);
      return;
    }
    if (text.length > MAX_LINE_CHARS) throw new BadInput(line, `a line of ${text.length.toLocaleString('en')} characters, more than the ${MAX_LINE_CHARS.toLocaleString('en')} a trace line may have`);
    if (text.indexOf('\uFFFD') !== -1) throw new BadInput(line, 'invalid UTF-8 (or a U+FFFD replacement character): ids and text must be valid UTF-8');
    const strict = strictJsonProblem(text);
    if (strict) throw new BadInput(line, strict);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new BadInput(line, `not valid JSON (${(err as Error).message})`);
    }
    if (this.sys === null) {
      try {
        this.header = readHeader(raw);
      } catch (err) {
        if (err instanceof FormatError) throw new BadInput(line, err.message);
        throw err;
      }
      this.sys = new System(this.header, { retireEnded: true, ...this.options.system });
      return;
    }
    let ev: TraceEvent;
    try {
      ev = readEvent(raw, this.header!.version);
    } catch (err) {
      if (err instanceof FormatError) throw new BadInput(line, err.message);
      throw err;
    }
    if (ev.t < this.lastTime) throw new BadInput(line, `time ${ev.t} is earlier than the previous event's ${this.lastTime}; times never decrease`);
    this.lastTime = ev.t;
    this.events++;
    const refusal = this.sys.apply(ev);
    if (refusal) {
      this.finding = fromRefusal(refusal, line, text);
      return;
    }
    const broken = checkTouched(this.sys);
    if (broken) this.finding = fromViolation(broken, line, text, 'invariant');
  }

  /** The verdict once every line has been fed. */
  end(): Verdict {
    if (this.sys === null) throw new BadInput(this.lines + 1, this.lines === 0 ? 'empty trace: the header line is missing' : 'no header line');
    if (!this.finding) {
      const rest = this.options.quiescent ? checkQuiescent(this.sys) : checkAtRest(this.sys);
      if (rest) this.finding = fromViolation(rest, this.lines + 1, '(end of trace)', 'at-rest');
    }
    if (this.finding) {
      return { verdict: 'violation', lines: this.lines, events: this.events, conformingPrefix: this.finding.line - 1, finding: this.finding };
    }
    let ended = 0;
    for (const r of this.sys.requests) if (r.value === 'finished' || r.value === 'aborted') ended++;
    return {
      verdict: 'conforms',
      lines: this.lines,
      events: this.events,
      requests: this.sys.requests.length,
      ended,
      quiescent: this.sys.liveCount === 0 && this.sys.ops.size === 0,
    };
  }
}

/**
 * The state invariants over what the last event touched. The blocks an op holds are not re-checked here:
 * they are copied from its requests' block tables, and a held block can change owner only through a free or an
 * allocation that NoFreeWhileInFlight and SingleOwner check on the block itself. The explorer checks it all.
 */
export function checkTouched(sys: System): Violation | null {
  for (const { kind, index } of sys.touched) {
    const v = kind === 'block' ? checkBlock(sys, index) : kind === 'request' ? checkRequest(sys, index) : kind === 'worker' ? checkWorker(sys, index) : null;
    if (v) return v;
  }
  return null;
}

function fromRefusal(r: Refusal, line: number, text: string): Finding {
  return {
    line,
    event: text,
    rule: r.protects,
    family: RULES[r.protects].family,
    kind: 'guard',
    machine: r.machine,
    state: r.state,
    ...(r.guard ? { guard: r.guard } : {}),
    message: r.message,
  };
}

function fromViolation(v: Violation, line: number, text: string, kind: 'invariant' | 'at-rest'): Finding {
  return { line, event: text, rule: v.invariant, family: v.family, kind, message: v.message };
}

/** Checks a whole trace given as text (tests and the explorer's round trip). */
export function checkText(text: string, options: CheckOptions = {}): Verdict {
  const checker = new TraceChecker(options);
  try {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    for (const l of lines) {
      checker.feed(l);
      if (checker.done) break;
    }
    return checker.end();
  } catch (err) {
    if (err instanceof BadInput) return { verdict: 'bad-input', line: err.line, message: err.message };
    throw err;
  }
}

/**
 * Checks a trace file, streaming: memory stays flat whatever its length. `-` reads standard input, so that an
 * engine's trace can be piped in as it is written; the verdict on a violation comes without waiting for the end.
 */
export async function checkFile(path: string, options: CheckOptions = {}): Promise<Verdict> {
  const checker = new TraceChecker(options);
  let carry = '';
  try {
    const stream = path === '-' ? process.stdin.setEncoding('utf8') : createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
    try {
      for await (const chunk of stream as AsyncIterable<string>) {
        let start = 0;
        let nl = chunk.indexOf('\n');
        if (nl === -1) {
          if (carry.length + chunk.length > MAX_LINE_CHARS) throw new BadInput(checker.lines + 1, `a line longer than the ${MAX_LINE_CHARS.toLocaleString('en')} characters a trace line may have`);
          carry += chunk;
          continue;
        }
        checker.feed(carry + chunk.slice(0, nl));
        carry = '';
        start = nl + 1;
        while (!checker.done && (nl = chunk.indexOf('\n', start)) !== -1) {
          checker.feed(chunk.slice(start, nl));
          start = nl + 1;
        }
        if (checker.done) {
          stream.destroy();
          break;
        }
        carry = chunk.slice(start);
      }
    } catch (err) {
      if (err instanceof BadInput) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new BadInput(0, e.code === 'ENOENT' ? `no such file: ${path}` : e.code === 'EISDIR' ? `${path} is a directory` : `cannot read ${path}: ${e.message}`);
    }
    if (carry !== '' && !checker.done) {
      try {
        checker.feed(carry);
      } catch (err) {
        if (err instanceof BadInput && err.message.startsWith('not valid JSON'))
          throw new BadInput(err.line, `truncated: the last line is incomplete JSON (${err.message.slice('not valid JSON ('.length, -1)})`);
        throw err;
      }
    }
    return checker.end();
  } catch (err) {
    if (err instanceof BadInput) return { verdict: 'bad-input', line: err.line, message: err.message };
    throw err;
  }
}

/** The verdict in words, for people. */
export function formatVerdict(name: string, v: Verdict): string {
  if (v.verdict === 'bad-input') return `${name}${v.line ? `:${v.line}` : ''}: bad input: ${v.message}`;
  if (v.verdict === 'conforms') {
    const rest = v.quiescent ? 'quiescent' : 'not quiescent';
    return `${name}: conforms — ${v.events} events, ${v.requests} request(s), ${v.ended} ended, ${rest}`;
  }
  const f = v.finding;
  const head = f.kind === 'at-rest' ? `${name}: violation of ${f.rule} (${f.family}) at the end of the trace` : `${name}:${f.line}: violation of ${f.rule} (${f.family})`;
  const how =
    f.kind === 'guard'
      ? `refused by ${f.machine}${f.guard ? ` guard '${f.guard}'` : ` (no '${eventName(f.event)}' in state '${f.state}')`}`
      : f.kind === 'invariant'
        ? 'allowed, but the state it leads to breaks the invariant'
        : 'the trace ends in a state that breaks the invariant';
  return [
    head,
    ...(f.kind === 'at-rest' ? [] : [`  event:   ${f.event}`]),
    `  why:     ${f.message}`,
    `  how:     ${how}`,
    `  rule:    ${RULES[f.rule].says}`,
    `  conforming prefix: lines 1–${v.conformingPrefix} (${f.kind === 'at-rest' ? v.events : v.events - 1} event(s))`,
  ].join('\n');
}

function eventName(text: string): string {
  try {
    return (JSON.parse(text) as { ev?: string }).ev ?? '?';
  } catch {
    return '?';
  }
}
