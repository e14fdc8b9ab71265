// Messages between loadPolicy (main thread) and a policy's worker. The observation travels without its
// `model` (functions cannot be copied); the worker rebuilds the model from the profile once, at load.
import type { MessagePort } from 'node:worker_threads';
import type { Observation } from '../policy-api.ts';
import type { Validated } from './validate.ts';

export type PolicySpec = { kind: 'builtin'; name: string } | { kind: 'module'; url: string };

export interface WorkerStart {
  spec: PolicySpec;
  policyOptions: Record<string, unknown>;
  profile: unknown;
  /** Int32Array[0]: PENDING until the worker picks the observation up, STARTED while decide() runs, ANSWERED once its reply is on `port`. */
  signal: SharedArrayBuffer;
  /** Decisions: observations in, Validated replies out. */
  port: MessagePort;
}

export type WorkerLoaded =
  | { type: 'ready'; name: string; claimsMonotone: boolean; interval: number }
  | { type: 'load-error'; message: string };

export type PlainObservation = Omit<Observation, 'model'>;

export type WorkerReply = Validated;

export const PENDING = 0;
export const ANSWERED = 1;
export const STARTED = 2;
