// The process a user's policy module runs in. Its worker (sandbox.ts) starts it under Node's permission
// model — it may read files and nothing more: no writes, no processes, no threads — so nothing the module
// does reaches pdspec's realm, its files or its output. Messages come in on standard input and go out on
// fd 3 (frames.ts); the module's own standard output and error go to the worker, which shows them marked as
// the policy's. The first message names the bundled module, its options and the latency profile.
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { Policy } from '../policy-api.ts';
import { firstLine } from './errors.ts';
import { FrameReader, frame } from './frames.ts';
import { InstanceTable } from './instances.ts';
import { rebuildLatencyModel } from './latency-model.ts';
import { policyFromModule, PolicyShapeError } from './module-shape.ts';
import type { PlainObservation, WorkerLoaded } from './worker-protocol.ts';

export interface HostStart {
  bundle: string;
  policyOptions: Record<string, unknown>;
  profile: unknown;
}

export type HostRequest = { seq: number; instance: number; observation: PlainObservation } | { drop: number };

const REPLIES = 3;
const send = (value: unknown) => writeSync(REPLIES, frame(value));

/** A policy sends no signals: process.kill(process.ppid) would end pdspec with no verdict. */
function refuseSignals(): void {
  const refuse = () => {
    throw new Error('a policy may not send signals (process.kill)');
  };
  process.kill = refuse;
  (process as unknown as { _kill: unknown })._kill = refuse;
}

async function load(start: HostStart): Promise<{ table: InstanceTable; fresh: boolean }> {
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(start.bundle).href)) as Record<string, unknown>;
  } catch (err) {
    throw new PolicyShapeError(`the module failed to import: ${firstLine(err)}`);
  }
  const fresh = typeof namespace.default === 'function';
  const single = fresh ? null : policyFromModule(namespace, start.policyOptions);
  const make = (): Policy => single ?? policyFromModule(namespace, start.policyOptions);
  return { table: new InstanceTable(make, rebuildLatencyModel(start.profile)), fresh };
}

let table: InstanceTable | null = null;
const reader = new FrameReader();

async function onMessage(message: unknown): Promise<void> {
  if (table === null) {
    let loaded: WorkerLoaded;
    try {
      refuseSignals();
      const made = await load(message as HostStart);
      table = made.table;
      const first = table.first;
      loaded = { type: 'ready', name: first.name, claimsMonotone: first.claimsMonotone ?? false, interval: first.interval ?? 1, fresh: made.fresh };
    } catch (err) {
      loaded = { type: 'load-error', message: firstLine(err) };
    }
    send(loaded);
    return;
  }
  const request = message as HostRequest;
  if ('drop' in request) table.drop(request.drop);
  else send({ seq: request.seq, reply: table.answer(request.instance, request.observation) });
}

// One message at a time, in order: a decision is synchronous, the load is the only await.
let queue = Promise.resolve();
process.stdin.on('data', (chunk: Buffer) => {
  for (const message of reader.push(chunk)) queue = queue.then(() => onMessage(message));
});
// The worker gone (pdspec done, or the worker stopped): nothing more to answer.
process.stdin.on('end', () => process.exit(0));
