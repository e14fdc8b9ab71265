// The worker side of an isolated policy: loads the policy once, then answers one observation at a time.
// Each reply is posted on the decision port and then signalled through shared memory, because the main
// thread waits for it synchronously (Atomics.wait) and cannot run an event loop meanwhile.
import { parentPort, workerData } from 'node:worker_threads';
import type { LatencyModel, Policy } from '../policy-api.ts';
import { BUILTIN_POLICIES, isBuiltinPolicyName } from './builtins.ts';
import { firstLine } from './errors.ts';
import { rebuildLatencyModel } from './latency-model.ts';
import { importPolicyModule, policyFromModule } from './module-shape.ts';
import { validateDecision } from './validate.ts';
import { ANSWERED, STARTED, type PlainObservation, type WorkerLoaded, type WorkerAnswer, type WorkerReply, type WorkerRequest, type WorkerStart } from './worker-protocol.ts';

const start = workerData as WorkerStart;
const signal = new Int32Array(start.signal);

/**
 * A policy sends no signals: from this thread, process.kill(process.pid) would end pdspec itself, with no
 * verdict and no exit code of its own. Refused, it is an error the policy threw — a fault, like any other.
 */
function refuseSignals(): void {
  const refuse = () => {
    throw new Error('a policy may not send signals (process.kill)');
  };
  process.kill = refuse;
  (process as unknown as { _kill: unknown })._kill = refuse;
}
refuseSignals();

/** The policy's maker: a new instance per call when it has one, else the one object. */
async function load(): Promise<{ make: () => Policy; fresh: boolean; model: LatencyModel }> {
  let make: () => Policy;
  let fresh = true;
  if (start.spec.kind === 'builtin') {
    if (!isBuiltinPolicyName(start.spec.name)) throw new Error(`unknown built-in policy '${start.spec.name}'`);
    const entry = BUILTIN_POLICIES[start.spec.name];
    make = () => entry.create(start.policyOptions);
  } else {
    const namespace = await importPolicyModule(start.spec.url);
    fresh = typeof namespace.default === 'function';
    if (fresh) make = () => policyFromModule(namespace, start.policyOptions);
    else {
      const single = policyFromModule(namespace, start.policyOptions);
      make = () => single;
    }
  }
  return { make, fresh, model: rebuildLatencyModel(start.profile) };
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

function decide(policy: Policy, model: LatencyModel, plain: PlainObservation): WorkerReply {
  let raw: unknown;
  try {
    raw = policy.decide({ ...plain, model });
  } catch (err) {
    return { ok: false, kind: 'threw', detail: `decide threw: ${firstLine(err)}` };
  }
  try {
    if (raw !== null && typeof raw === 'object' && typeof (raw as { then?: unknown }).then === 'function') {
      // A Promise is a contract breach, reported below; keep its rejection from crashing the worker.
      Promise.resolve(raw).catch(() => undefined);
    }
    return validateDecision(raw, plain.shareRule);
  } catch (err) {
    // A decision that cannot even be read (a Proxy or a getter that throws) is malformed, not a crash of the worker.
    return { ok: false, kind: 'malformed', detail: `malformed decision: it cannot be read (${firstLine(err)})` };
  }
}

try {
  const { make, fresh, model } = await load();
  const instances = new Map<number, Policy>([[0, make()]]);
  let newest = 0;
  start.port.on('message', (request: WorkerRequest) => {
    if ('drop' in request) {
      instances.delete(request.drop);
      return;
    }
    // The time budget runs from here: waiting for this thread to be scheduled is not the policy's time.
    Atomics.store(signal, 0, STARTED);
    Atomics.notify(signal, 0);
    let policy = instances.get(request.instance);
    if (policy === undefined && request.instance > newest) {
      try {
        policy = make();
      } catch (err) {
        reply(request.nonce, { ok: false, kind: 'threw', detail: `making a fresh instance threw: ${firstLine(err)}` });
        return;
      }
      instances.set(request.instance, policy);
      newest = request.instance;
    }
    if (policy === undefined) reply(request.nonce, { ok: false, kind: 'unavailable', detail: `the policy is not running: instance ${request.instance} was dropped` });
    else reply(request.nonce, decide(policy, model, request.observation));
  });
  const first = instances.get(0)!;
  const ready: WorkerLoaded = {
    type: 'ready',
    name: first.name,
    claimsMonotone: first.claimsMonotone ?? false,
    interval: first.interval ?? 1,
    fresh,
  };
  parentPort!.postMessage(ready);
} catch (err) {
  const failed: WorkerLoaded = { type: 'load-error', message: firstLine(err) };
  parentPort!.postMessage(failed);
}
