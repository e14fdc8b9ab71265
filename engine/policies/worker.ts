// The worker side of an isolated policy: loads the policy once, then answers one observation at a time.
// Each reply is posted on the decision port and then signalled through shared memory, because the main
// thread waits for it synchronously (Atomics.wait) and cannot run an event loop meanwhile.
//
// A built-in runs here, in this thread. A user's module never does: it runs in its own sandboxed process
// (sandbox.ts, host.ts), and this worker only relays — so nothing the module does, not even writing to
// file descriptor 1 or exiting, reaches pdspec's realm or its output. A command (`exec:`) runs in its own
// process too and speaks JSON Lines with this worker (exec.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { BUILTIN_POLICIES, isBuiltinPolicyName } from './builtins.ts';
import { firstLine } from './errors.ts';
import { InstanceTable } from './instances.ts';
import { rebuildLatencyModel } from './latency-model.ts';
import { startExecPolicy } from './exec.ts';
import { startSandbox } from './sandbox.ts';
import { ANSWERED, STARTED, type PlainObservation, type WorkerAnswer, type WorkerLoaded, type WorkerProcess, type WorkerReply, type WorkerRequest, type WorkerStart } from './worker-protocol.ts';

const start = workerData as WorkerStart;
const signal = new Int32Array(start.signal);

/** Where decisions are made: in this thread (a built-in) or in the module's process. */
interface Decider {
  loaded: WorkerLoaded;
  decide(instance: number, observation: PlainObservation): WorkerReply | Promise<WorkerReply>;
  drop(instance: number): void;
}

function builtinDecider(name: string): Decider {
  if (!isBuiltinPolicyName(name)) throw new Error(`unknown built-in policy '${name}'`);
  const entry = BUILTIN_POLICIES[name];
  const table = new InstanceTable(() => entry.create(start.policyOptions), rebuildLatencyModel(start.profile));
  const first = table.first;
  return {
    loaded: { type: 'ready', name: first.name, claimsMonotone: first.claimsMonotone ?? false, interval: first.interval ?? 1, fresh: true },
    decide: (instance, observation) => table.answer(instance, observation),
    drop: (instance) => table.drop(instance),
  };
}

async function load(): Promise<Decider> {
  if (start.spec.kind === 'builtin') return builtinDecider(start.spec.name);
  if (start.spec.kind === 'exec') {
    const group = (pid: number) => parentPort!.postMessage({ type: 'process', pid, group: true } satisfies WorkerProcess);
    return startExecPolicy(start.spec.command, start.spec.cwd, start.policyOptions, start.profile, group);
  }
  const announce = (pid: number) => parentPort!.postMessage({ type: 'process', pid } satisfies WorkerProcess);
  return startSandbox(start.spec.url, start.policyOptions, start.profile, announce);
}

function reply(nonce: string, message: WorkerReply): void {
  try {
    start.port.postMessage({ nonce, reply: message } satisfies WorkerAnswer);
  } catch (err) {
    const malformed: WorkerReply = { ok: false, kind: 'malformed', detail: `malformed decision: it cannot be copied (${firstLine(err)})` };
    start.port.postMessage({ nonce, reply: malformed } satisfies WorkerAnswer);
  }
  Atomics.store(signal, 0, ANSWERED);
  Atomics.notify(signal, 0);
}

try {
  const decider = await load();
  if (decider.loaded.type === 'ready') {
    start.port.on('message', async (request: WorkerRequest) => {
      if ('drop' in request) {
        decider.drop(request.drop);
        return;
      }
      // The time budget runs from here: waiting for this thread to be scheduled is not the policy's time.
      Atomics.store(signal, 0, STARTED);
      Atomics.notify(signal, 0);
      reply(request.nonce, await decider.decide(request.instance, request.observation));
    });
  }
  parentPort!.postMessage(decider.loaded);
} catch (err) {
  const failed: WorkerLoaded = { type: 'load-error', message: firstLine(err) };
  parentPort!.postMessage(failed);
}
