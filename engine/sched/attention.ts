// Core-attention disaggregation (CAD, DistCA; docs/cad.md): the core attention softmax(QKᵀ)V of each step
// runs as tasks on stateless attention servers instead of on the worker. At a step's begin each batch item's
// query positions are sharded, the shards balanced over the live servers (greedy, then moved or split until
// the busiest server is within ε of the mean), and dispatched into the servers' buffers (ping-pong with two);
// a buffer takes its next task once the result of the one in it is read back. The whole order of the step's
// task events is planned at its begin (the engine prices the step from the plan); the tasks' creation and
// first dispatches are written right after `step_begin`, the rest just before `step_end`, at that time (the
// spec orders these events, it does not time them). A server loss (the `lossAtStep` option) sends the lost
// server's unfinished tasks to the live servers. The engine's own records: each task's state, each server's
// buffers and the tasks it was given; faults change two decisions through seams (freesBufferOnEnd,
// redispatchOnLoss).
import type { TraceEvent } from '../../spec/trace-format.ts';
import type { AttentionServerConfig } from '../config.ts';
import type { AttentionServerWork, StepAttention } from '../executors/step-executor.ts';
import type { Rooms } from '../rooms.ts';
import type { Req, Step } from '../state.ts';

export type AttentionTaskState = 'created' | 'dispatched' | 'computing' | 'returned' | 'consumed';

/** Causal (query, key) pairs of query positions [from, to): position p attends to p + 1 keys. */
export function causalPairs(from: number, to: number): number {
  return (to * (to + 1) - from * (from + 1)) / 2;
}

/** One task: the core attention of a request's query positions [from, to), reading the K/V of 0 .. to − 1. */
export class AttentionTask {
  state: AttentionTaskState = 'created';
  /** The server and buffer it is in (−1 while not dispatched). */
  server = -1;
  buffer = -1;
  dispatches = 0;
  consumes = 0;

  constructor(
    readonly id: string,
    readonly req: Req,
    readonly from: number,
    readonly to: number,
    readonly blocks: readonly number[],
  ) {}

  get pairs(): number {
    return causalPairs(this.from, this.to);
  }
}

/** A query shard being placed: a request's positions [from, to) and the server it goes to. */
export interface Shard {
  item: number;
  from: number;
  to: number;
  server: number;
}

/**
 * The balancing scheduler: `shards` (their load: causal pairs) onto `live` servers. Greedy first (heaviest
 * first onto the least-loaded server); then, while the busiest server's load exceeds (1 + ε) · the mean, one
 * shard of the busiest server goes to the least-loaded one: a whole shard, or the tail of one split on the
 * query axis, whichever load is nearer half the gap between them (only moves that narrow the gap). Stops
 * when balanced, when nothing narrows the gap, or after 64 moves per server. Returns the shards (some split)
 * with their servers, and each server's load (indexed by server).
 */
export function balance(shards: readonly Omit<Shard, 'server'>[], live: readonly number[], servers: number, epsilon: number): { shards: Shard[]; loads: number[] } {
  const out: Shard[] = shards.map((s) => ({ ...s, server: -1 }));
  const loads = new Array<number>(servers).fill(0);
  const order = out.map((_, i) => i).sort((a, b) => causalPairs(out[b].from, out[b].to) - causalPairs(out[a].from, out[a].to) || a - b);
  const least = (): number => {
    let best = live[0];
    for (const s of live) if (loads[s] < loads[best]) best = s;
    return best;
  };
  for (const i of order) {
    const s = least();
    out[i].server = s;
    loads[s] += causalPairs(out[i].from, out[i].to);
  }
  const total = live.reduce((a, s) => a + loads[s], 0);
  const mean = total / live.length;
  for (let moves = 0; moves < 64 * live.length; moves++) {
    let hi = live[0];
    for (const s of live) if (loads[s] > loads[hi]) hi = s;
    const lo = least();
    if (loads[hi] <= (1 + epsilon) * mean || hi === lo) break;
    const gap = loads[hi] - loads[lo];
    const half = gap / 2;
    // A whole shard: the one whose load is nearest half the gap, below the gap.
    let move = -1;
    for (let i = 0; i < out.length; i++) {
      if (out[i].server !== hi) continue;
      const x = causalPairs(out[i].from, out[i].to);
      if (x < gap && (move < 0 || Math.abs(x - half) < Math.abs(causalPairs(out[move].from, out[move].to) - half))) move = i;
    }
    // A split: the tail [c, to) of a shard of at least two positions, its load as near half the gap as it gets.
    let split = -1;
    let at = -1;
    for (let i = 0; i < out.length; i++) {
      const sh = out[i];
      if (sh.server !== hi || sh.to - sh.from < 2) continue;
      // The smallest c > from whose tail load is at most half the gap (tail loads fall as c grows).
      let a = sh.from + 1;
      let b = sh.to;
      while (a < b) {
        const m = (a + b) >> 1;
        if (causalPairs(m, sh.to) <= half) b = m;
        else a = m + 1;
      }
      let c = a;
      if (c >= sh.to || (c > sh.from + 1 && Math.abs(causalPairs(c - 1, sh.to) - half) < Math.abs(causalPairs(c, sh.to) - half) && causalPairs(c - 1, sh.to) < gap)) c -= 1;
      if (c <= sh.from || c >= sh.to) continue;
      if (split < 0 || Math.abs(causalPairs(c, sh.to) - half) < Math.abs(causalPairs(at, out[split].to) - half)) {
        split = i;
        at = c;
      }
    }
    const moveLoad = move < 0 ? Number.NaN : causalPairs(out[move].from, out[move].to);
    const splitLoad = split < 0 ? Number.NaN : causalPairs(at, out[split].to);
    if (move >= 0 && (split < 0 || Math.abs(moveLoad - half) <= Math.abs(splitLoad - half))) {
      out[move].server = lo;
      loads[hi] -= moveLoad;
      loads[lo] += moveLoad;
    } else if (split >= 0 && splitLoad > 0 && splitLoad < gap) {
      const sh = out[split];
      out.push({ item: sh.item, from: at, to: sh.to, server: lo });
      sh.to = at;
      loads[hi] -= splitLoad;
      loads[lo] += splitLoad;
    } else break;
  }
  return { shards: out, loads };
}

/** A step's planned task events written just before its end. */
interface StepPlan {
  readonly post: TraceEvent[];
}

/** What attention servers did in a run. */
export interface AttentionCounts {
  tasks: number;
  dispatches: number;
  consumes: number;
  losses: number;
  /** Steps whose shards were balanced, and how many of them met the target (busiest ≤ (1 + ε) · mean). */
  balancedSteps: number;
  withinTarget: number;
  /** The largest busiest/mean load ratio of a step that could meet the target (no single position heavier than ε · mean). */
  worstRatio: number;
}

export class AttentionServers {
  readonly ids: readonly string[];
  private readonly lost: boolean[];
  /** Per server, per buffer: the task whose data it holds, or null. */
  private readonly buffers: (AttentionTask | null)[][];
  /**
   * Per server: the tasks it was given in the current and the previous step (a loss re-dispatches those of
   * them not read back; older ones are all read back, so they are dropped).
   */
  private given: AttentionTask[][];
  private givenBefore: AttentionTask[][];
  private readonly plans = new Map<Step, StepPlan>();
  private taskSeq = 0;
  private stepSeq = 0;
  readonly counts: AttentionCounts = { tasks: 0, dispatches: 0, consumes: 0, losses: 0, balancedSteps: 0, withinTarget: 0, worstRatio: 0 };

  constructor(
    private readonly rooms: Rooms,
    readonly config: AttentionServerConfig,
  ) {
    this.ids = Array.from({ length: config.servers }, (_, i) => `A${i}`);
    this.lost = new Array<boolean>(config.servers).fill(false);
    this.buffers = this.ids.map(() => new Array<AttentionTask | null>(config.buffers).fill(null));
    this.given = this.ids.map(() => []);
    this.givenBefore = this.ids.map(() => []);
  }

  /** The header's `attentionServers`. */
  headerServers(): { id: string; buffers: number }[] {
    return this.ids.map((id) => ({ id, buffers: this.config.buffers }));
  }

  /**
   * `step` of `worker` (on `gpu`) begins with items (request, first position, positions): plans its tasks
   * and returns the events written right after `step_begin` and the servers' work (for the executor).
   */
  begin(step: Step, worker: string, gpu: number, items: readonly { req: Req; from: number; tokens: number; decode: boolean }[]): { pre: TraceEvent[]; work: StepAttention } {
    const cfg = this.config;
    const T = this.rooms.config.blockSize;
    const seams = this.rooms.seams;
    const on = this.rooms.tracer.on;
    const stepNo = ++this.stepSeq;
    const live = this.ids.map((_, s) => s).filter((s) => !this.lost[s]);
    for (let s = 0; s < cfg.servers; s++) {
      const keep = this.givenBefore[s].filter((t) => t.state !== 'consumed');
      this.givenBefore[s] = this.given[s];
      this.given[s] = keep;
    }
    // Shards: each item's query positions in min(shards, positions) runs of (nearly) equal length (with
    // `offload: prefill`, a decode item's attention stays on the worker).
    const shards: Omit<Shard, 'server'>[] = [];
    for (let i = 0; i < items.length; i++) {
      const { from, tokens, decode } = items[i];
      if (tokens <= 0 || (decode && !cfg.offloadDecode)) continue;
      const k = Math.min(cfg.shards, tokens);
      for (let j = 0; j < k; j++) shards.push({ item: i, from: from + Math.floor((tokens * j) / k), to: from + Math.floor((tokens * (j + 1)) / k) });
    }
    const plan = balance(shards, live, cfg.servers, cfg.epsilon);
    this.record(plan, live);
    // Tasks in item then position order; each server takes its shards heaviest first.
    const placed = plan.shards.slice().sort((a, b) => a.item - b.item || a.from - b.from);
    const pre: TraceEvent[] = [];
    const post: TraceEvent[] = [];
    const queues: AttentionTask[][] = this.ids.map(() => []);
    const load = new Array<number>(cfg.servers).fill(0);
    for (const sh of placed) {
      const r = items[sh.item].req;
      const t = new AttentionTask(`c${++this.taskSeq}`, r, sh.from, sh.to, r.blocks[gpu].slice(0, Math.ceil(sh.to / T)));
      this.counts.tasks++;
      queues[sh.server].push(t);
      load[sh.server] += t.pairs;
      if (on) pre.push({ t: 0, ev: 'task_create', task: t.id, req: r.id, worker, step: step.id, from: t.from, to: t.to, blocks: t.blocks.slice() });
    }
    for (const q of queues) q.sort((a, b) => b.pairs - a.pairs);
    // Ping-pong: per server, its buffers in the order their tasks were dispatched (the next to compute first).
    const order: number[][] = this.ids.map(() => []);
    const touched = new Set<AttentionTask>();
    const dispatch = (t: AttentionTask, s: number, b: number, into: TraceEvent[]): void => {
      touched.add(t);
      t.state = 'dispatched';
      t.server = s;
      t.buffer = b;
      t.dispatches++;
      this.counts.dispatches++;
      this.buffers[s][b] = t;
      this.given[s].push(t);
      order[s].push(b);
      if (on) into.push({ t: 0, ev: 'task_dispatch', task: t.id, server: this.ids[s], buffer: b });
    };
    const fill = (s: number, into: TraceEvent[]): void => {
      for (let b = 0; b < cfg.buffers && queues[s].length > 0; b++) if (this.buffers[s][b] === null) dispatch(queues[s].shift()!, s, b, into);
    };
    for (const s of live) fill(s, pre);
    // The loss: this step's, on the lost server's last task start (its earlier tasks of the step are read back).
    let losing = cfg.lossAtStep === stepNo && !this.lost[cfg.lossServer] ? cfg.lossServer : -1;
    let wasted = 0;
    const lose = (s: number): void => {
      losing = -1;
      this.lost[s] = true;
      this.counts.losses++;
      if (on) post.push({ t: 0, ev: 'server_lost', server: this.ids[s] });
      for (const b of order[s]) {
        const t = this.buffers[s][b]!;
        if (t.state === 'computing') wasted += t.pairs;
      }
      const again = seams.redispatchOnLoss([...this.givenBefore[s], ...this.given[s]]);
      this.buffers[s].fill(null);
      order[s].length = 0;
      const rest = queues[s].splice(0);
      this.given[s] = [];
      this.givenBefore[s] = [];
      const alive = this.ids.map((_, i) => i).filter((i) => !this.lost[i]);
      for (const t of [...again, ...rest]) {
        t.state = 'created';
        t.server = -1;
        t.buffer = -1;
        let to = alive[0];
        for (const i of alive) if (load[i] < load[to]) to = i;
        queues[to].push(t);
        load[to] += t.pairs;
      }
      load[s] = 0;
      for (const i of alive) fill(i, post);
    };
    if (losing >= 0 && order[losing].length === 0) lose(losing);
    // Each round, every live server computes the task of its oldest loaded buffer, returns it, and the worker
    // reads it back; the freed buffer takes the server's next task (ping-pong: the other buffer was loaded
    // while this one computed).
    for (let busy = true; busy; ) {
      busy = false;
      for (let s = 0; s < cfg.servers; s++) {
        if (this.lost[s] || order[s].length === 0) continue;
        busy = true;
        const b = order[s].shift()!;
        const t = this.buffers[s][b]!;
        t.state = 'computing';
        if (on) post.push({ t: 0, ev: 'task_start', task: t.id });
        if (s === losing && order[s].length === 0 && queues[s].length === 0) {
          order[s].unshift(b);
          lose(s);
          continue;
        }
        t.state = 'returned';
        if (on) post.push({ t: 0, ev: 'task_end', task: t.id });
        const early = seams.freesBufferOnEnd();
        if (early) {
          this.buffers[s][b] = null;
          fill(s, post);
        }
        t.state = 'consumed';
        t.consumes++;
        this.counts.consumes++;
        if (on) post.push({ t: 0, ev: 'task_consume', task: t.id });
        if (!early) {
          this.buffers[s][b] = null;
          fill(s, post);
        }
      }
    }
    if (on) this.plans.set(step, { post });
    // The servers' work: every task dispatched in this step, on the live server that computed it.
    const servers: AttentionServerWork[] = [];
    for (let s = 0; s < cfg.servers; s++) if (!this.lost[s]) servers.push(this.work([...touched].filter((t) => t.server === s)));
    return { pre, work: { servers, wastedPairs: wasted, buffers: cfg.buffers, decodeLocal: !cfg.offloadDecode } };
  }

  /** The events planned for `step` before its end (written at its end time), and the step's plan dropped. */
  end(step: Step): TraceEvent[] {
    const plan = this.plans.get(step);
    if (!plan) return [];
    this.plans.delete(step);
    return plan.post;
  }

  /** A server's work: its tasks' pairs and queries; the K/V it reads, once per request (its tasks' furthest key). */
  private work(tasks: readonly AttentionTask[]): AttentionServerWork {
    const w = { tasks: 0, pairs: 0, queries: 0, keys: 0 };
    const furthest = new Map<Req, number>();
    for (const t of tasks) {
      w.tasks++;
      w.pairs += t.pairs;
      w.queries += t.to - t.from;
      furthest.set(t.req, Math.max(furthest.get(t.req) ?? 0, t.to));
    }
    for (const k of furthest.values()) w.keys += k;
    return w;
  }

  private record(plan: { shards: Shard[]; loads: number[] }, live: readonly number[]): void {
    if (plan.shards.length === 0) return;
    const total = live.reduce((a, s) => a + plan.loads[s], 0);
    const mean = total / live.length;
    let max = 0;
    for (const s of live) max = Math.max(max, plan.loads[s]);
    // A step can meet the target only if no single query position is heavier than ε · mean.
    let heaviest = 0;
    for (const sh of plan.shards) heaviest = Math.max(heaviest, sh.to);
    this.counts.balancedSteps++;
    if (max <= (1 + this.config.epsilon) * mean + 1e-9) this.counts.withinTarget++;
    else if (heaviest <= this.config.epsilon * mean) this.counts.worstRatio = Math.max(this.counts.worstRatio, max / mean);
  }
}
