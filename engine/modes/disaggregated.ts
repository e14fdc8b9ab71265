// Full disaggregation (DistServe, Splitwise, vLLM's P/D connectors): the prefill worker and the decode worker
// each have a GPU and a KV pool. The KV connector's job lives here: a prefilled request returns its first
// token, then waits until the decode side has blocks for it (decode-side pre-allocation), and one KV transfer
// per request moves its cache over a single link, in FIFO order; the prefill side frees its copy when the
// transfer ends. With `decodeAdmitTimeout`, the decode side rejects a request it could not admit in time, and
// tells the prefill side, which frees its blocks (the connector's request_finished may delay a free).
import type { Split } from '../policy-api.ts';
import { PrefillScheduler } from '../sched/prefill.ts';
import { SimKind } from '../sim/clock.ts';
import { Transfer, type Req, type Worker } from '../state.ts';
import { ServingMode, type RoleSchedulers, type WorkerDecl } from './mode.ts';

/** The prefill scheduler, with the connector's admission of prefilled requests to the decode side first. */
class ConnectedPrefillScheduler extends PrefillScheduler {
  constructor(
    rooms: ConstructorParameters<typeof PrefillScheduler>[0],
    private readonly mode: DisaggregatedMode,
  ) {
    super(rooms);
  }

  override start(w: Worker): void {
    this.mode.admitTransfers(w);
    super.start(w);
  }
}

export class DisaggregatedMode extends ServingMode {
  override readonly fifoIsProtocol = false;
  private xferSeq = 0;
  /** When the link between the GPUs is next free. */
  private linkFreeAt = 0;

  topology(split: Split): WorkerDecl[] {
    return [
      { id: 'P0', role: 'prefill', share: split.prefill, gpu: 0 },
      { id: 'D0', role: 'decode', share: split.decode, gpu: 1 },
    ];
  }

  schedulers(): RoleSchedulers {
    return { prefill: new ConnectedPrefillScheduler(this.rooms, this), decode: this.decodeScheduler() };
  }

  /** The prefill instance returns the first token; the request then waits for decode-side blocks. */
  afterPrefill(r: Req, w: Worker): boolean {
    const { lifecycle, config, clock } = this.rooms;
    lifecycle.appendToken(r, r.pendingToken);
    if (r.generated >= r.maxTokens) {
      lifecycle.finish(r);
      return false;
    }
    w.pendingTransfer.push(r);
    if (config.decodeAdmitTimeout < Number.POSITIVE_INFINITY) clock.push(clock.now + config.decodeAdmitTimeout, SimKind.AdmitTimeout, r);
    return false;
  }

  /** Prefilled requests of `p`, in order, get decode-side blocks while there is room, and their transfers start. */
  admitTransfers(p: Worker): void {
    const { workers, config, kv, tracer, clock } = this.rooms;
    const queue = p.pendingTransfer;
    while (queue.length > 0) {
      const r = queue[0];
      if (r.state !== 'prefilled' || r.server !== p) {
        queue.shift();
        continue;
      }
      const d = workers.decodeTarget();
      const need = Math.ceil(r.computed / config.blockSize);
      if (!kv.hasRoom(d.gpu, need)) break; // wait for decode-side room
      queue.shift();
      kv.allocate(d, r, d.gpu, need);
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'handoff', req: r.id, from: p.id, to: d.id });
      r.state = 'handedOff';
      r.server = d;
      r.awaitingKv = true;
      p.load--;
      d.load++;
      d.fifo.push(r);
      this.beginTransfer(r, p, d);
    }
  }

  /** One link: transfers queue behind each other, so they complete in FIFO order. */
  private beginTransfer(r: Req, from: Worker, to: Worker): void {
    const { tracer, clock, config } = this.rooms;
    const x = new Transfer(String(++this.xferSeq), r, from, to);
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'transfer_begin', xfer: x.id, req: r.id, from: from.id, to: to.id });
    r.inFlight++;
    const start = this.linkFreeAt > clock.now ? this.linkFreeAt : clock.now;
    this.linkFreeAt = start + config.executor.transferTime(r.computed);
    clock.push(this.linkFreeAt, SimKind.TransferEnd, x);
  }

  override onTransferEnd(x: Transfer): void {
    const { tracer, clock, lifecycle, kv } = this.rooms;
    const r = x.req;
    r.inFlight--;
    r.transferEnded = true;
    const cancelled = r.state === 'aborted';
    if (tracer.on) tracer.emit(cancelled ? { t: clock.now, ev: 'transfer_end', xfer: x.id, outcome: 'cancelled' } : { t: clock.now, ev: 'transfer_end', xfer: x.id });
    if (cancelled) {
      lifecycle.settle(r);
      return;
    }
    r.awaitingKv = false;
    // The prefill side's copy is no longer needed.
    kv.freePool(r, x.from.gpu);
  }

  /** If `r` still waits for decode-side blocks, the decode side rejects it, and tells the prefill side. */
  override onAdmitTimeout(r: Req): void {
    if (r.state !== 'prefilled' || r.server === null || r.server.role !== 'prefill') return;
    const { tracer, clock, lifecycle, config, seams } = this.rooms;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'abort', req: r.id, note: `rejected by the decode side: no blocks within ${config.decodeAdmitTimeout} s` });
    lifecycle.end(r, 'aborted');
    r.outcome = 'rejected';
    seams.tellPrefillOfRejection(r);
  }
}
