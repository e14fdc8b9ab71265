// The main-thread side of an isolated policy: a worker thread, called synchronously.
//
// Why a worker and shared memory: decide() is synchronous (the engine's loop calls it inline), and a
// synchronous infinite loop in a policy can only be stopped from another thread. The main thread posts the
// observation, then blocks in Atomics.wait on a shared flag with the time budget as timeout; the worker
// answers on a MessagePort and raises the flag; receiveMessageOnPort then reads the answer without an
// event loop turn. On timeout the worker is terminated (V8 interrupts even `while (true) {}`).
import { randomUUID } from 'node:crypto';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { Observation } from '../policy-api.ts';
import { PENDING, STARTED, type PlainObservation, type PolicySpec, type WorkerAnswer, type WorkerLoaded, type WorkerProcess, type WorkerReply, type WorkerRequest, type WorkerStart } from './worker-protocol.ts';

const WORKER_ENTRY = new URL('./worker-entry.mjs', import.meta.url);
const PICKUP_LIMIT_MS = 30_000;

/** Waits while signal[0] holds `value`, at most `limitMs`; false if it still holds it then. */
function waitWhile(signal: Int32Array, value: number, limitMs: number): boolean {
  const deadline = performance.now() + limitMs;
  while (Atomics.load(signal, 0) === value) {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.wait(signal, 0, value, left);
  }
  return true;
}

/** Copies a worker's output stream to standard error, each line prefixed with `mark`. */
function forwardMarked(stream: NodeJS.ReadableStream, mark: string): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    if (lines.length) process.stderr.write(lines.map((l) => `${mark}${l}\n`).join(''));
  });
  stream.on('end', () => {
    if (pending) process.stderr.write(`${mark}${pending}\n`);
  });
}

export type CallResult = { status: 'answered'; reply: WorkerReply } | { status: 'timeout' } | { status: 'gone'; reason: string };

export interface IsolatedPolicy {
  name: string;
  claimsMonotone: boolean;
  interval: number;
  /** Whether the worker makes fresh instances (a factory module, a built-in); else every instance is the one object. */
  fresh: boolean;
  /** One decision of instance `instance` (0 exists from the start; a higher number is made on first use). */
  call(observation: Observation, budgetMs: number, instance?: number): CallResult;
  /** The worker forgets instance `instance`. */
  drop(instance: number): void;
  terminate(): Promise<void>;
}

/** Starts the worker and waits for the policy to load; rejects with the worker's one-line reason. */
export async function startIsolatedPolicy(
  spec: PolicySpec,
  policyOptions: Record<string, unknown>,
  profile: unknown,
  loadTimeoutMs: number,
): Promise<IsolatedPolicy> {
  const signalBuffer = new SharedArrayBuffer(4);
  const signal = new Int32Array(signalBuffer);
  const { port1: mainPort, port2: workerPort } = new MessageChannel();
  const workerData: WorkerStart = { spec, policyOptions, profile, signal: signalBuffer, port: workerPort };
  // The policy's own output never mixes into pdspec's standard output (a --json verdict): both of its
  // streams are captured and shown on standard error, each line marked as the policy's.
  const worker = new Worker(WORKER_ENTRY, { workerData, transferList: [workerPort], stdout: true, stderr: true });
  for (const stream of [worker.stdout, worker.stderr]) forwardMarked(stream, `[policy output] `);
  // An idle policy worker must not keep the process alive (the CLI exits when its work is done).
  worker.unref();
  mainPort.unref();

  let gone: string | undefined;
  worker.on('error', (err) => {
    gone ??= `its worker crashed: ${err.message.split('\n')[0]}`;
  });
  worker.on('exit', (code) => {
    gone ??= `its worker exited (code ${code})`;
  });

  // A user's module runs in its own process, started by the worker: it is stopped with the worker, and at
  // the latest when pdspec exits (a process stuck in a loop would not notice its pipes closing).
  // A command's process leads its own group (its shell and what that starts): the whole group is stopped.
  let pid: number | undefined;
  const stopProcess = () => {
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    LIVE_PROCESSES.delete(pid);
    pid = undefined;
  };
  worker.on('message', (m: Partial<WorkerProcess> | null) => {
    if (m?.type === 'process' && typeof m.pid === 'number' && Number.isInteger(m.pid) && m.pid > 1) {
      pid = m.group === true ? -m.pid : m.pid;
      LIVE_PROCESSES.add(pid);
    }
  });

  const loaded = await loadedMessage(worker, loadTimeoutMs);
  if (loaded.type === 'load-error') {
    stopProcess();
    await worker.terminate();
    mainPort.close();
    throw new Error(loaded.message);
  }

  let terminated = false;
  const terminate = async () => {
    if (terminated) return;
    terminated = true;
    gone ??= 'it was closed';
    mainPort.close();
    stopProcess();
    await worker.terminate();
  };

  return {
    name: loaded.name,
    claimsMonotone: loaded.claimsMonotone,
    interval: loaded.interval,
    fresh: loaded.fresh,
    terminate,
    drop(instance) {
      if (!terminated && gone === undefined) mainPort.postMessage({ drop: instance } satisfies WorkerRequest);
    },
    call(observation, budgetMs, instance = 0) {
      if (terminated || gone !== undefined) return { status: 'gone', reason: gone ?? 'it was closed' };
      const result = ask(mainPort, signal, observation, budgetMs, instance);
      if (result.status === 'timeout') {
        gone = 'it was terminated after exceeding its time budget on an earlier decision';
        void terminate();
      }
      return result;
    },
  };
}

/** Policy processes not yet stopped: killed when pdspec exits, however it exits. */
const LIVE_PROCESSES = new Set<number>();
process.on('exit', () => {
  for (const pid of LIVE_PROCESSES) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** The worker's load message on its parent port: the policy loaded, or why not (also on an error or after the time limit). */
function loadedMessage(worker: Worker, loadTimeoutMs: number): Promise<WorkerLoaded> {
  return new Promise<WorkerLoaded>((resolve) => {
    const timer = setTimeout(() => resolve({ type: 'load-error', message: `loading took longer than ${loadTimeoutMs} ms` }), loadTimeoutMs);
    const onMessage = (message: WorkerLoaded | WorkerProcess) => {
      if (message.type === 'process') return;
      worker.off('message', onMessage);
      clearTimeout(timer);
      resolve(message);
    };
    worker.on('message', onMessage);
    worker.once('error', (err) => {
      clearTimeout(timer);
      resolve({ type: 'load-error', message: err.message.split('\n')[0] ?? String(err) });
    });
  });
}

/** One decision, synchronously: post the observation with a fresh nonce, wait for the worker, take the reply with that nonce. */
function ask(mainPort: MessagePort, signal: Int32Array, observation: Observation, budgetMs: number, instance: number): CallResult {
  const { model: _model, ...plain } = observation;
  // Whatever is still on the port (a late or forged message) is not an answer to this observation.
  while (receiveMessageOnPort(mainPort) !== undefined);
  const nonce = randomUUID();
  Atomics.store(signal, 0, PENDING);
  try {
    mainPort.postMessage({ instance, observation: plain satisfies PlainObservation, nonce } satisfies WorkerRequest);
  } catch (err) {
    // The caller's bug, not the policy's: an observation must be plain data besides `model`.
    throw new TypeError(`the observation cannot be copied to the policy's worker: ${(err as Error).message.split('\n')[0]}`);
  }
  // The budget counts from when decide() starts: on a loaded machine the worker thread may wait a while for
  // its turn, and that is not the policy's time. A worker that never picks the observation up is given up on
  // after PICKUP_LIMIT_MS. Each wait is repeated until the state really moved on: a wake-up can be the
  // worker's earlier notification (of STARTED) arriving late.
  if (!waitWhile(signal, PENDING, PICKUP_LIMIT_MS) || !waitWhile(signal, STARTED, budgetMs)) return { status: 'timeout' };
  for (let received = receiveMessageOnPort(mainPort); received !== undefined; received = receiveMessageOnPort(mainPort)) {
    const answer = received.message as Partial<WorkerAnswer> | null;
    if (answer !== null && typeof answer === 'object' && answer.nonce === nonce) return { status: 'answered', reply: answer.reply as WorkerReply };
  }
  return { status: 'gone', reason: 'its worker signalled an answer to this observation but sent none' };
}
