// Messages between loadPolicy (main thread) and a policy's worker. The observation travels without its
// `model` (functions cannot be copied); the worker rebuilds the model from the profile once, at load.
import type { MessagePort } from 'node:worker_threads';
import type { Observation } from '../policy-api.ts';
import type { Validated } from './validate.ts';

/** A built-in by name, a module by file URL, or a command speaking the JSON Lines protocol (exec.ts), run in `cwd`. */
export type PolicySpec = { kind: 'builtin'; name: string } | { kind: 'module'; url: string } | { kind: 'exec'; command: string; cwd: string };

export interface WorkerStart {
  spec: PolicySpec;
  policyOptions: Record<string, unknown>;
  profile: unknown;
  /** Int32Array[0]: PENDING until the worker picks the observation up, STARTED while decide() runs, ANSWERED once its reply is on `port`. */
  signal: SharedArrayBuffer;
  /** Decisions: observations in, Validated replies out. */
  port: MessagePort;
}

/**
 * `fresh`: the module exports a factory (or the policy is a built-in), so the worker can make new instances
 * with no history; otherwise every instance number is the one policy object.
 */
export type WorkerLoaded =
  | { type: 'ready'; name: string; claimsMonotone: boolean; interval: number; fresh: boolean }
  | { type: 'load-error'; message: string };

/** Sent before WorkerLoaded when the policy runs in its own process: the main thread stops it with the worker. */
export interface WorkerProcess {
  type: 'process';
  pid: number;
  /** The process leads its own process group (an exec policy's shell and what it starts): the group is stopped. */
  group?: boolean;
}

/** On the decision port: an observation for instance `instance` (made on first use; 0 exists from the start), or an instance to forget. */
export type WorkerRequest = { instance: number; observation: PlainObservation; nonce: string } | { drop: number };

/**
 * A reply carries the nonce of the request it answers. Anything in the worker can post on the port (the
 * policy's code included), so the main thread takes only the message with the nonce it just sent: a reply
 * forged in advance can never be read as the answer to a later observation, and a reply made after seeing
 * the observation is no more than the policy answering it — validated like any decision.
 */
export interface WorkerAnswer {
  nonce: string;
  reply: WorkerReply;
}

export type PlainObservation = Omit<Observation, 'model'>;

export type WorkerReply = Validated;

export const PENDING = 0;
export const ANSWERED = 1;
export const STARTED = 2;
