// The trace checker: replays a trace v1 through the system spec, one line at a time, in constant memory
// beyond the live state. The verdict names the first line the spec does not allow, the guard or invariant
// that failed, the ids involved and the longest prefix that conformed.
import { createReadStream } from 'node:fs';
import { checkAtRest, checkBlock, checkQuiescent, checkRequest, checkWorker, propertyOf, RULES, type InvariantName, type Violation } from './invariants.ts';
import type { Refusal } from './machine-kit.ts';
import { strictJsonProblem } from './strict-json.ts';
import { stepKey, System, transferKey, type SystemOptions } from './system.ts';
import { FormatError, readEvent, readHeader, type TraceEvent, type TraceHeader } from './trace-format.ts';


/** The event text of a finding at the end of the trace. */
const END_OF_TRACE = '(end of trace)';

/** The longest trace line read (16 MiB of text: a step of tens of thousands of requests fits). */
export const MAX_LINE_CHARS = 1 << 24;

export interface Finding {
  /** 1-based line of the offending event; for an at-rest finding at the end of the trace, the line after the last. */
  line: number;
  /** The event's text, or "(end of trace)". */
  event: string;
  rule: InvariantName;
  family: string;
  /** The property at stake: the family, or for a protocol rule the property its refusal protects. */
  property: string;
  /**
   * `guard`: the event was refused; `invariant`: it was allowed but broke a state invariant; `at-rest`: the trace
   * ended inconsistent, or an `idle` event (trace v3) came in a state that is not at rest; `deadline`: the event
   * comes after a release deadline while the request still holds blocks (the event itself is not refused).
   */
  kind: 'guard' | 'invariant' | 'at-rest' | 'deadline';
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
  /**
   * A release deadline in seconds (ReleaseWithin): every ended request frees all it holds by an event no later
   * than D after its end, or after the completion of the steps and transfers in flight on its blocks at its end.
   * Overrides the v3 header's `releaseWithin`; absent, that applies, if any.
   */
  releaseWithin?: number;
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
  /** The release deadline D in seconds, or null when none applies. */
  private releaseWithin: number | null = null;
  /** Ended requests that held something when their release began, by deadline; lazily dropped once free. */
  private readonly deadlines = new DeadlineHeap();
  /** The earliest pending deadline (Infinity when none): the one comparison every event pays. */
  private due = Number.POSITIVE_INFINITY;
  /** Ended requests holding blocks while a step or transfer on them is in flight: their release begins at its end. */
  private readonly awaiting = new Set<number>();
  /** Requests with a pending deadline whose release began at an op's completion rather than at their end (for the message). */
  private readonly beganAtOp = new Set<number>();
  /** Whether applied events need a second look: a deadline applies, or the trace (v3) may say `idle`. */
  private watch = false;

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
      this.releaseWithin = this.options.releaseWithin ?? this.header.releaseWithin ?? null;
      this.watch = this.releaseWithin !== null || this.header.version >= 3;
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
    // A deadline is certain to be missed at the first event past it: no free can come earlier.
    if (ev.t > this.due) {
      this.finding = this.overdue(ev.t, line, text);
      if (this.finding) return;
    }
    const opReqs = this.awaiting.size > 0 ? this.opRequests(ev) : null;
    const refusal = this.sys.apply(ev);
    if (refusal) {
      this.finding = fromRefusal(refusal, line, text);
      return;
    }
    const broken = checkTouched(this.sys);
    if (broken) this.finding = fromViolation(broken, line, text, 'invariant');
    else if (this.watch) this.afterEvent(ev, line, text, opReqs);
  }

  /** The requests of the step or transfer an event ends, read before the event removes it. */
  private opRequests(ev: TraceEvent): readonly number[] | null {
    if (ev.ev === 'step_end') return this.sys!.ops.get(stepKey(ev.worker, ev.step))?.reqs ?? null;
    if (ev.ev === 'transfer_end') return this.sys!.ops.get(transferKey(ev.xfer))?.reqs ?? null;
    return null;
  }

  /** Release deadlines begin at a request's end or at its last op's completion; `idle` is judged at rest. */
  private afterEvent(ev: TraceEvent, line: number, text: string, opReqs: readonly number[] | null): void {
    const sys = this.sys!;
    const D = this.releaseWithin;
    if (ev.ev === 'finish' || ev.ev === 'abort') {
      if (D === null) return;
      const r = sys.requestIndex.get(ev.req)!;
      if (!holdsAnything(sys, r)) return;
      if (sys.requests[r].context.inFlight > 0) this.awaiting.add(r);
      else this.startRelease(r, ev.t, D);
    } else if (opReqs !== null && D !== null) {
      for (const r of opReqs) {
        if (!this.awaiting.has(r) || sys.requests[r].context.inFlight > 0) continue;
        this.awaiting.delete(r);
        if (!holdsAnything(sys, r)) continue;
        this.beganAtOp.add(r);
        this.startRelease(r, ev.t, D);
      }
    } else if (ev.ev === 'idle') {
      // The engine says nothing waits, runs or is in flight: the at-rest rules hold now, as at a quiescent end.
      const rest = checkQuiescent(sys);
      if (rest) this.finding = fromViolation(rest, line, text, 'at-rest');
    }
  }

  private startRelease(r: number, from: number, D: number): void {
    this.deadlines.push(from + D, r, from);
    this.due = this.deadlines.min();
  }

  /** The first request past its deadline at time t that still holds something, as a finding; drops those that released. */
  private overdue(t: number, line: number, text: string): Finding | null {
    const sys = this.sys!;
    const heap = this.deadlines;
    let finding: Finding | null = null;
    while (heap.size > 0 && heap.min() < t) {
      const { at, req, from } = heap.pop();
      const atOp = this.beganAtOp.delete(req);
      if (!holdsAnything(sys, req)) continue;
      const id = sys.requestIds[req];
      const { value, context } = sys.requests[req];
      const blocks = sys.tables[req];
      const held = [blocks.length ? `block(s) ${blocks.join(', ')}` : '', context.slots ? `${context.slots} state slot(s)` : ''].filter(Boolean).join(' and ');
      finding = {
        line,
        event: text,
        rule: 'ReleaseWithin',
        family: RULES.ReleaseWithin.family,
        property: propertyOf('ReleaseWithin'),
        kind: 'deadline',
        message: `request ${id} ${value} ${atOp ? `while a step or transfer used its blocks, which completed at t=${num(from)} s` : `at t=${num(from)} s`}, so under the release deadline of ${num(this.releaseWithin!)} s everything it held was due free by t=${num(at)} s; at t=${num(t)} s it still holds ${held}`,
      };
      break;
    }
    this.due = heap.size > 0 ? heap.min() : Number.POSITIVE_INFINITY;
    return finding;
  }

  /** The verdict once every line has been fed. */
  end(): Verdict {
    if (this.sys === null) throw new BadInput(this.lines + 1, this.lines === 0 ? 'empty trace: the header line is missing' : 'no header line');
    if (!this.finding) {
      const rest = this.options.quiescent ? checkQuiescent(this.sys) : checkAtRest(this.sys);
      if (rest) this.finding = fromViolation(rest, this.lines + 1, END_OF_TRACE, 'at-rest');
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
      // One definition with `--quiescent`: every request ended, no step or transfer in flight, every block and
      // state slot free. A flag of its own could call a trace quiescent that `--quiescent` rejects.
      quiescent: checkQuiescent(this.sys) === null,
    };
  }
}

/** A time for people: no float noise such as 6.199999999999999. */
function num(x: number): string {
  return String(Number(x.toPrecision(12)));
}

/** Whether request r still holds a block or a state slot. */
function holdsAnything(sys: System, r: number): boolean {
  return sys.tables[r].length > 0 || sys.requests[r].context.slots > 0;
}

/** A min-heap of release deadlines: (deadline, request, when its release began). */
class DeadlineHeap {
  private at: number[] = [];
  private req: number[] = [];
  private from: number[] = [];

  get size(): number {
    return this.at.length;
  }

  min(): number {
    return this.at[0];
  }

  push(at: number, req: number, from: number): void {
    const A = this.at;
    const R = this.req;
    const F = this.from;
    let i = A.length;
    A.push(at);
    R.push(req);
    F.push(from);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (A[p] <= at) break;
      A[i] = A[p];
      R[i] = R[p];
      F[i] = F[p];
      i = p;
    }
    A[i] = at;
    R[i] = req;
    F[i] = from;
  }

  pop(): { at: number; req: number; from: number } {
    const A = this.at;
    const R = this.req;
    const F = this.from;
    const top = { at: A[0], req: R[0], from: F[0] };
    const at = A.pop()!;
    const req = R.pop()!;
    const from = F.pop()!;
    const n = A.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && A[c + 1] < A[c]) c++;
      if (A[c] >= at) break;
      A[i] = A[c];
      R[i] = R[c];
      F[i] = F[c];
      i = c;
    }
    A[i] = at;
    R[i] = req;
    F[i] = from;
    return top;
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
    property: propertyOf(r.protects),
    kind: 'guard',
    machine: r.machine,
    state: r.state,
    ...(r.guard ? { guard: r.guard } : {}),
    message: r.message,
  };
}

function fromViolation(v: Violation, line: number, text: string, kind: 'invariant' | 'at-rest'): Finding {
  return { line, event: text, rule: v.invariant, family: v.family, property: propertyOf(v.invariant), kind, message: v.message };
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
  const atEnd = f.kind === 'at-rest' && f.event === END_OF_TRACE;
  const family = f.property === f.family ? f.family : `${f.family}; at stake: ${f.property}`;
  const head = atEnd ? `${name}: violation of ${f.rule} (${family}) at the end of the trace` : `${name}:${f.line}: violation of ${f.rule} (${family})`;
  const how =
    f.kind === 'guard'
      ? `refused by ${f.machine}${f.guard ? ` guard '${f.guard}'` : ` (no '${eventName(f.event)}' in state '${f.state}')`}`
      : f.kind === 'invariant'
        ? 'allowed, but the state it leads to breaks the invariant'
        : f.kind === 'deadline'
          ? 'this event comes after the release deadline while the request still holds what it names: no free can come in time any more (the event itself is allowed)'
          : atEnd
            ? 'the trace ends in a state that breaks the invariant'
            : 'the engine says it is idle, but the state breaks the invariant';
  return [
    head,
    ...(atEnd ? [] : [`  event:   ${f.event}`]),
    `  why:     ${f.message}`,
    `  how:     ${how}`,
    `  rule:    ${RULES[f.rule].says}`,
    `  conforming prefix: lines 1–${v.conformingPrefix} (${atEnd ? v.events : v.events - 1} event(s))`,
  ].join('\n');
}

function eventName(text: string): string {
  try {
    return (JSON.parse(text) as { ev?: string }).ev ?? '?';
  } catch {
    return '?';
  }
}
