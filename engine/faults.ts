// Fault switches: each reintroduces the mechanism of a real bug from the bug zoo (docs/bug-zoo.md) into
// the engine, so that the kit can show it catches the bug. All are off by default. Each switch changes one
// named place of engine/engine.ts:
//
//   freeRequestBlocks   the free of a request's blocks             duplicateRelease (Z8, Z12)
//   completeRetraction  preemption's free and requeue              leakPartialBlockOnRetract (Z9)
//   abortRequest        the abort path                             freeTwiceOnAbortedTransfer (Z5),
//                                                                  abortWaitsForEndedTransfer (Z6),
//                                                                  abortForgetsQueuedAfterTransfer (Z10),
//                                                                  abortFreesDuringTransfer (Z11)
//   settle              deferred free when a step/transfer ends    (the other half of Z5 and Z6)
//   allocate            query → take → update utilisation          locklessAllocator (Z13)
//   retireWorker        resize migration                           dropFifoOnResize (Z15)

export interface EngineFaults {
  /** Z8, Z12: the first finished request's blocks are released twice (two places free the same slot). */
  duplicateRelease?: boolean;
  /** Z9: retracting a request whose cached length is not block-aligned forgets its last, partial block (a leak). */
  leakPartialBlockOnRetract?: boolean;
  /** Z5: an abort during a KV transfer frees the request's blocks at once, and again when the transfer ends. */
  freeTwiceOnAbortedTransfer?: boolean;
  /** Z6: an abort after the transfer already ended still waits for its completion signal, which never comes (a leak). */
  abortWaitsForEndedTransfer?: boolean;
  /** Z10: a request pre-allocated, transferred and queued at the decode side, then aborted, is never freed. */
  abortForgetsQueuedAfterTransfer?: boolean;
  /** Z11: an abort during a transfer frees the decode-side blocks at once, while the transfer still writes them. */
  abortFreesDuringTransfer?: boolean;
  /**
   * Z13: allocation does not take the pool lock. Every worker that allocates in one scheduling pass reads
   * utilisation at the start of the pass (the two processes' schedulers run at the same time), so their
   * query/take/update steps interleave and both take the same free blocks.
   */
  locklessAllocator?: boolean;
  /** Z15: during a resize an old decode worker migrates its running requests but not its FIFO, then stops. */
  dropFifoOnResize?: boolean;
}

export const FAULT_NAMES = [
  'duplicateRelease',
  'leakPartialBlockOnRetract',
  'freeTwiceOnAbortedTransfer',
  'abortWaitsForEndedTransfer',
  'abortForgetsQueuedAfterTransfer',
  'abortFreesDuringTransfer',
  'locklessAllocator',
  'dropFifoOnResize',
] as const satisfies readonly (keyof EngineFaults)[];

export function anyFault(faults: EngineFaults): boolean {
  return FAULT_NAMES.some((name) => faults[name] === true);
}
