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
import { ANSWERED, STARTED, type PlainObservation, type WorkerLoaded, type WorkerReply, type WorkerStart } from './worker-protocol.ts';

const start = workerData as WorkerStart;
const signal = new Int32Array(start.signal);

async function load(): Promise<{ policy: Policy; model: LatencyModel }> {
  let policy: Policy;
  if (start.spec.kind === 'builtin') {
    if (!isBuiltinPolicyName(start.spec.name)) throw new Error(`unknown built-in policy '${start.spec.name}'`);
    policy = BUILTIN_POLICIES[start.spec.name].create(start.policyOptions);
  } else {
    policy = policyFromModule(await importPolicyModule(start.spec.url), start.policyOptions);
  }
  return { policy, model: rebuildLatencyModel(start.profile) };
}

function reply(message: WorkerReply): void {
  try {
    start.port.postMessage(message);
  } catch (err) {
    start.port.postMessage({ ok: false, kind: 'malformed', detail: `malformed decision: it cannot be copied (${firstLine(err)})` });
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
  if (raw !== null && typeof raw === 'object' && typeof (raw as { then?: unknown }).then === 'function') {
    // A Promise is a contract breach, reported below; keep its rejection from crashing the worker.
    Promise.resolve(raw).catch(() => undefined);
  }
  return validateDecision(raw, plain.shareRule);
}

try {
  const { policy, model } = await load();
  start.port.on('message', (plain: PlainObservation) => {
    // The time budget runs from here: waiting for this thread to be scheduled is not the policy's time.
    Atomics.store(signal, 0, STARTED);
    Atomics.notify(signal, 0);
    reply(decide(policy, model, plain));
  });
  const ready: WorkerLoaded = {
    type: 'ready',
    name: policy.name,
    claimsMonotone: policy.claimsMonotone ?? false,
    interval: policy.interval ?? 1,
  };
  parentPort!.postMessage(ready);
} catch (err) {
  const failed: WorkerLoaded = { type: 'load-error', message: firstLine(err) };
  parentPort!.postMessage(failed);
}
