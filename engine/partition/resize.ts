// The partition controller's resize (semi-PD §4.3, Nexus's repartition): the delayed switch — new workers
// start with the new split while the old ones keep serving — then the asynchronous switch — once every new
// worker is ready, each old worker hands its requests, in order, to its successor after its current
// iteration, and stops. spec/machines/resize.ts is its judge.
import type { Rooms } from '../rooms.ts';
import type { Split } from '../policy-api.ts';
import { SimKind } from '../sim/clock.ts';
import { Worker, type Req } from '../state.ts';

interface ResizeState {
  epoch: number;
  split: Split;
  phase: 'initialising' | 'switching';
  olds: Worker[];
  news: Worker[];
  ready: number;
}

export class Resize {
  epoch = 0;
  /** The split in force (the target of a resize in progress takes over at its end). */
  split: Split;
  /** The resize in progress. */
  current: ResizeState | null = null;
  /** Resizes begun. */
  count = 0;

  constructor(private readonly rooms: Rooms) {
    this.split = { ...rooms.config.split };
  }

  /** The split decisions are heading to: the resize's target, or the split in force. */
  get target(): Split {
    return this.current ? this.current.split : this.split;
  }

  /** The delayed switch: a new worker for each old one, with the new split's share. */
  begin(split: Split): void {
    const { tracer, clock, workers, config } = this.rooms;
    const epoch = this.epoch + 1;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'resize_begin', epoch, prefill: split.prefill, decode: split.decode });
    const olds = workers.live.filter((w) => w.epoch === this.epoch);
    const news: Worker[] = [];
    const init = config.executor.workerInitTime(config.mode.resizeMechanism);
    for (const old of olds) {
      const share = old.role === 'prefill' ? split.prefill : split.decode;
      const w = new Worker(`${old.role === 'prefill' ? 'P' : 'D'}${epoch}`, old.role, epoch, share, old.gpu, 'starting', old.allocatesOwn);
      w.scheduler = old.scheduler;
      workers.add(w);
      news.push(w);
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'worker_start', worker: w.id, role: w.role, epoch, share, gpu: w.gpu });
      clock.push(clock.now + init, SimKind.WorkerReady, w);
    }
    this.current = { epoch, split: { ...split }, phase: 'initialising', olds, news, ready: 0 };
    this.count++;
  }

  /** A new worker is ready; once all are, the old ones hand over, each after its own current iteration. */
  onWorkerReady(w: Worker): void {
    const { tracer, clock } = this.rooms;
    const rs = this.current!;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'worker_ready', worker: w.id });
    w.state = 'idle';
    rs.ready++;
    if (rs.ready < rs.news.length) return;
    rs.phase = 'switching';
    for (const old of rs.olds) {
      old.retiring = true;
      if (old.step === null) this.retire(old);
    }
  }

  /** Migration: an old worker hands its requests, in order, to its successor, then stops. */
  retire(w: Worker): void {
    const { tracer, clock, workers, seams } = this.rooms;
    const rs = this.current!;
    const successor = rs.news.find((n) => n.role === w.role)!;
    const move = (r: Req) => {
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'migrate', req: r.id, from: w.id, to: successor.id });
      r.server = successor;
      w.load--;
      successor.load++;
    };
    for (const r of w.prefilling) if (r.state === 'prefilling' && r.server === w) {
      move(r);
      successor.prefilling.push(r);
    }
    w.prefilling = [];
    w.nextBatch = null;
    for (const r of w.running) if (r.state === 'decoding' && r.server === w) {
      move(r);
      successor.running.push(r);
    }
    w.running = [];
    seams.migrateFifo(w, successor, move);
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'worker_stop', worker: w.id });
    w.state = 'stopped';
    w.retiring = false;
    workers.remove(w);
    if (rs.olds.every((o) => o.state === 'stopped')) this.end(rs);
  }

  private end(rs: ResizeState): void {
    const { tracer, clock, history } = this.rooms;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'resize_end', epoch: rs.epoch });
    this.epoch = rs.epoch;
    this.split = rs.split;
    this.current = null;
    history.split(clock.now, this.split);
  }
}
