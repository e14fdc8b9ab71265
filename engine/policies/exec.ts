// A policy in any language: `--policy exec:'python3 my_policy.py'` runs the command in its own process and
// speaks the JSON Lines protocol of docs/policy-protocol.md with it over its standard input and output —
// a handshake that agrees on the protocol version, then one observation in and one decision out, with the
// latency model answered on request in between. Seen from here (the policy's trusted worker thread, see
// worker.ts) it is one more Decider: every reply is validated like a module's decision, the time budget is
// kept by the main thread (isolated.ts), which kills the process's whole group when it runs over, and
// anything that breaks the protocol is a fault naming the observation, never a verdict.
import { spawn, type ChildProcess } from 'node:child_process';
import type { LatencyModel } from '../policy-api.ts';
import { firstLine } from './errors.ts';
import { rebuildLatencyModel } from './latency-model.ts';
import { validateDecision } from './validate.ts';
import type { PlainObservation, WorkerLoaded, WorkerReply } from './worker-protocol.ts';

/** The protocol's name and the one version this pdspec speaks. */
export const EXEC_PROTOCOL = 'pdspec-policy';
export const EXEC_PROTOCOL_VERSION = 1;
/** The prefix of a `--policy` value that names a command. */
export const EXEC_PREFIX = 'exec:';
/** A line longer than this is not a message of the protocol. */
export const MAX_LINE_CHARS = 16 * 1024 * 1024;
/** Model queries answered per decision at most: a policy that asks more is looping. */
export const MAX_MODEL_QUERIES = 100_000;

const MODEL_FUNCTIONS = { prefillTime: 2, decodeTime: 3 } as const;

export interface ExecDecider {
  loaded: WorkerLoaded;
  pid: number;
  decide(instance: number, observation: PlainObservation): Promise<WorkerReply>;
  drop(instance: number): void;
}

/** A value as a short printable text, for messages. */
function shown(text: string, max = 120): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Why a handshake reply is not one this pdspec accepts, or the load message it makes. */
export function readHello(message: unknown): WorkerLoaded {
  if (!isRecord(message)) return { type: 'load-error', message: 'its first line is not a handshake object' };
  if (message.type === 'error') {
    return { type: 'load-error', message: `it refused to start: ${typeof message.message === 'string' ? shown(message.message, 500) : 'no reason given'}` };
  }
  if (message.type !== 'hello') return { type: 'load-error', message: `its first line must be the handshake {"type":"hello",...}, got type ${JSON.stringify(message.type) ?? 'undefined'}` };
  if (message.protocol !== EXEC_PROTOCOL) return { type: 'load-error', message: `its handshake names protocol ${JSON.stringify(message.protocol) ?? 'undefined'}, not "${EXEC_PROTOCOL}"` };
  if (message.version !== EXEC_PROTOCOL_VERSION) {
    return { type: 'load-error', message: `it speaks protocol version ${JSON.stringify(message.version) ?? 'undefined'}; this pdspec speaks version ${EXEC_PROTOCOL_VERSION}` };
  }
  if (typeof message.name !== 'string' || message.name.trim() === '') return { type: 'load-error', message: "its handshake has no 'name' (a non-empty string)" };
  if (message.claimsMonotone !== undefined && typeof message.claimsMonotone !== 'boolean') return { type: 'load-error', message: "its handshake's 'claimsMonotone' must be a boolean" };
  const interval = message.interval ?? 1;
  if (!(typeof interval === 'number' && Number.isFinite(interval) && interval > 0)) return { type: 'load-error', message: "its handshake's 'interval' must be a positive number of seconds" };
  if (message.instances !== undefined && typeof message.instances !== 'boolean') return { type: 'load-error', message: "its handshake's 'instances' must be a boolean" };
  return { type: 'ready', name: message.name, claimsMonotone: message.claimsMonotone === true, interval, fresh: message.instances === true };
}

/** Splits a byte stream into lines (UTF-8, \n or \r\n); throws on a line beyond MAX_LINE_CHARS. */
class LineReader {
  private pending = '';
  push(chunk: string): string[] {
    const parts = (this.pending + chunk).split('\n');
    this.pending = parts.pop()!;
    if (this.pending.length > MAX_LINE_CHARS) throw new Error(`a line longer than ${MAX_LINE_CHARS} characters`);
    return parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  }
}

/** A latency-model answer for a query, or the reason it cannot be answered. */
function answerModel(model: LatencyModel, message: Record<string, unknown>): { value: number | null } | { error: string } {
  const fn = message.fn;
  if (typeof fn !== 'string' || !Object.hasOwn(MODEL_FUNCTIONS, fn)) return { error: `unknown model function ${JSON.stringify(fn) ?? 'undefined'} (known: prefillTime, decodeTime)` };
  const args = message.args;
  const arity = MODEL_FUNCTIONS[fn as keyof typeof MODEL_FUNCTIONS];
  if (!Array.isArray(args) || args.length !== arity || !args.every((a) => typeof a === 'number' && Number.isFinite(a))) {
    return { error: `${fn} takes ${arity} finite numbers, got ${shown(JSON.stringify(args) ?? 'undefined')}` };
  }
  try {
    const value = fn === 'prefillTime' ? model.prefillTime(args[0], args[1]) : model.decodeTime(args[0], args[1], args[2]);
    return { value: Number.isFinite(value) ? value : null };
  } catch (err) {
    return { error: firstLine(err) };
  }
}

/**
 * Starts the command (through /bin/sh, in its own process group, in `cwd`), sends the handshake with the
 * policy's options, and resolves once the policy has answered it — or with a load error saying why not.
 */
export function startExecPolicy(
  command: string,
  cwd: string,
  policyOptions: Record<string, unknown>,
  profile: unknown,
  onProcess: (pid: number) => void,
): Promise<ExecDecider> {
  let model: LatencyModel;
  try {
    model = rebuildLatencyModel(profile);
  } catch (err) {
    return Promise.reject(err);
  }
  let child: ChildProcess;
  try {
    child = spawn(command, {
      shell: true,
      cwd,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      // The parent's NODE_OPTIONS may load tsx or a test runner's hooks: not the policy's business.
      env: { ...process.env, NODE_OPTIONS: '' },
    });
  } catch (err) {
    return Promise.reject(new Error(`the command could not start: ${firstLine(err)}`));
  }
  if (child.pid !== undefined) onProcess(child.pid);
  const input = child.stdin!;
  input.on('error', () => undefined); // a dead process's pipe: reported through 'exit'
  // The policy's diagnostics: to this worker's standard error, which the main thread marks as the policy's.
  child.stderr!.pipe(process.stderr);

  const reader = new LineReader();
  let gone: string | undefined;
  let seq = 0;
  let loading: ((loaded: WorkerLoaded) => void) | null = null;
  let waiting: { seq: number; shareRule: PlainObservation['shareRule']; queries: number; resolve: (reply: WorkerReply) => void } | null = null;

  const kill = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  /** The process is of no more use: the pending decision (or the load) learns why. */
  const fail = (reason: string, kind: 'malformed' | 'unavailable') => {
    const first = gone === undefined;
    gone ??= reason;
    loading?.({ type: 'load-error', message: reason });
    loading = null;
    if (waiting) {
      const detail = first ? reason : `the policy is not running: ${gone}`;
      waiting.resolve({ ok: false, kind: first ? kind : 'unavailable', detail });
      waiting = null;
    }
    if (first) kill();
  };
  const send = (message: unknown) => {
    if (gone === undefined) input.write(`${JSON.stringify(message)}\n`);
  };

  child.on('error', (err) => fail(`its command could not run: ${err.message}`, 'unavailable'));
  child.on('exit', (code, signal) => {
    const how = signal ? `signal ${signal}` : `code ${code}`;
    fail(loading ? `its process exited (${how}) before the handshake` : waiting ? `its process exited (${how}) before answering this observation` : `its process exited (${how})`, 'unavailable');
  });

  const onLine = (line: string) => {
    if (gone !== undefined) return;
    if (line.trim() === '') return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (err) {
      fail(`malformed line from the policy's process (not JSON: ${firstLine(err)}): ${shown(line)}`, 'malformed');
      return;
    }
    if (loading) {
      const loaded = readHello(message);
      if (loaded.type === 'load-error') {
        fail(loaded.message, 'malformed');
        return;
      }
      loading(loaded);
      loading = null;
      return;
    }
    if (!waiting) {
      fail(`malformed line from the policy's process: it wrote a line while no observation was pending: ${shown(line)}`, 'malformed');
      return;
    }
    if (!isRecord(message) || message.seq !== waiting.seq) {
      const got = isRecord(message) ? `seq ${JSON.stringify(message.seq) ?? 'missing'}` : 'not an object';
      fail(`malformed line from the policy's process: expected a reply to observation seq ${waiting.seq}, got ${got}: ${shown(line)}`, 'malformed');
      return;
    }
    if (message.type === 'model') {
      waiting.queries += 1;
      if (waiting.queries > MAX_MODEL_QUERIES) {
        fail(`it asked the latency model more than ${MAX_MODEL_QUERIES} times for one observation`, 'malformed');
        return;
      }
      send({ type: 'model', seq: waiting.seq, ...answerModel(model, message) });
      return;
    }
    const answer = waiting.resolve;
    const shareRule = waiting.shareRule;
    waiting = null;
    if (message.type === 'decision') {
      answer(validateDecision(message.decision, shareRule));
    } else if (message.type === 'error') {
      const why = typeof message.message === 'string' ? shown(message.message, 500) : 'no reason given';
      answer({ ok: false, kind: 'threw', detail: `decide raised: ${why}` });
    } else {
      answer({ ok: false, kind: 'malformed', detail: `malformed line from the policy's process: expected type "decision", "model" or "error", got ${JSON.stringify(message.type) ?? 'undefined'}` });
    }
  };

  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    let lines: string[];
    try {
      lines = reader.push(chunk);
    } catch (err) {
      fail(`malformed output from the policy's process: ${firstLine(err)}`, 'malformed');
      return;
    }
    for (const line of lines) onLine(line);
  });

  return new Promise<ExecDecider>((resolve, reject) => {
    loading = (loaded) => {
      if (loaded.type === 'load-error') {
        reject(new Error(loaded.message));
        return;
      }
      resolve({
        loaded,
        pid: child.pid!,
        decide(instance, observation) {
          if (gone !== undefined) return Promise.resolve({ ok: false, kind: 'unavailable', detail: `the policy is not running: ${gone}` });
          seq += 1;
          const mine = seq;
          return new Promise<WorkerReply>((answer) => {
            waiting = { seq: mine, shareRule: observation.shareRule, queries: 0, resolve: answer };
            // Numbers that are not finite (a percentile of an empty window is NaN) travel as null.
            send({ type: 'observe', seq: mine, instance, observation });
          });
        },
        drop(instance) {
          send({ type: 'drop', instance });
        },
      });
    };
    input.write(`${JSON.stringify({ type: 'hello', protocol: EXEC_PROTOCOL, version: EXEC_PROTOCOL_VERSION, options: policyOptions })}\n`);
  });
}
