// The machines on XState's own interpreter, and the compiled transition function that the checker and the
// explorer run: both must agree on every transition.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActor, initialTransition, transition, type AnyStateMachine } from 'xstate';
import { allocatorMachine, blockMachine, poolMachine } from '../spec/kv.ts';
import { fire, type CompiledMachine } from '../spec/machine-kit.ts';
import { partitionMachine, workerMachine } from '../spec/partition.ts';
import { LIVE_REQUEST_STATES, requestMachine } from '../spec/request.ts';
import { MACHINES, type MachineName } from '../spec/system.ts';

const inputs: Record<MachineName, fc.Arbitrary<unknown>> = {
  request: fc.record({ prompt: fc.integer({ min: 1, max: 6 }), maxTokens: fc.integer({ min: 0, max: 3 }), pools: fc.constantFrom(1, 2) }),
  block: fc.constant({}),
  pool: fc.record({ locking: fc.boolean() }),
  allocator: fc.record({ role: fc.constantFrom('prefill', 'decode', 'unified'), decodeOwned: fc.boolean() }),
  worker: fc.record({ role: fc.constantFrom('prefill', 'decode', 'unified'), epoch: fc.nat(2), share: fc.integer({ min: 1, max: 100 }), gpu: fc.nat(1) }),
  partition: fc.record({ prefill: fc.integer({ min: 1, max: 100 }), decode: fc.integer({ min: 1, max: 100 }), rule: fc.constantFrom('oversubscribe', 'exact'), workers: fc.integer({ min: 1, max: 2 }) }),
  slot: fc.constant({}),
  task: fc.constant({}),
  buffer: fc.constant({}),
};

const worker = fc.constantFrom('P0', 'D0', 'U0', 'P1', 'D1');
const role = fc.constantFrom('prefill', 'decode', 'unified');
const req = fc.constantFrom('r1', 'r2');

/** Every payload field any machine reads, drawn from small domains; each event carries all of them. */
const payload = fc.record({
  worker,
  role,
  from: worker,
  to: worker,
  toRole: role,
  fromRole: role,
  req,
  tokens: fc.integer({ min: 1, max: 6 }),
  pool: fc.nat(1),
  serverPool: fc.integer({ min: -1, max: 1 }),
  blockSize: fc.integer({ min: 1, max: 4 }),
  count: fc.integer({ min: 1, max: 3 }),
  remaining: fc.nat(3),
  index: fc.nat(4),
  crossGpu: fc.boolean(),
  ok: fc.boolean(),
  version: fc.nat(4),
  seen: fc.nat(4),
  held: fc.nat(1),
  holders: fc.constant('step 1 of D0'),
  key: fc.constantFrom('k0', 'k1'),
  keyed: fc.nat(3),
  blocks: fc.array(fc.nat(5), { minLength: 1, maxLength: 3 }),
  side: fc.constantFrom('from', 'to'),
  queued: fc.boolean(),
  mine: fc.boolean(),
  epoch: fc.nat(3),
  fromEpoch: fc.nat(2),
  toEpoch: fc.nat(2),
  prefill: fc.integer({ min: 1, max: 100 }),
  decode: fc.integer({ min: 1, max: 100 }),
  share: fc.integer({ min: 1, max: 100 }),
  liveWorkers: fc.integer({ min: 1, max: 2 }),
  draft: fc.constantFrom(0, 0, 0, 2),
  accepted: fc.nat(2),
  anyPhase: fc.boolean(),
  server: fc.constantFrom('A0', 'A1'),
  buffer: fc.nat(3),
  task: fc.constantFrom('t1', 't2'),
});

function eventsOf(name: MachineName) {
  const types = [...new Set(MACHINES[name].edges.map((e) => e.event))];
  return fc.tuple(fc.constantFrom(...types), payload, fc.nat(3).map((n) => n > 0), fc.noBias(fc.nat(1023)));
}

/**
 * Random events rarely satisfy a guard (the step's worker must be the request's server, and so on); three
 * events in four are steered: an event type the current state has a transition for, with the facts it expects,
 * so that runs go deep.
 */
type Ctx = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const steer: Partial<Record<MachineName, (c: Ctx, ev: Ctx) => Ctx>> = {
  request: (c, raw) => {
    // The composition sends step_end and transfer_end only for an op in flight.
    const ev = (raw.type === 'step_end' || raw.type === 'transfer_end') && c.inFlight === 0 ? { ...raw, type: raw.type === 'step_end' ? 'step_begin' : 'transfer_begin' } : raw;
    const left = c.prompt + c.generated - c.computed;
    const server = c.server ?? ev.worker;
    // A step starts where the request's computed positions end (trace v3's `from`); elsewhere `from` is a worker.
    return { ...ev, worker: server, from: ev.type === 'step_begin' ? c.computed : server, draft: ev.type === 'step_begin' && c.tokenOwed ? 0 : ev.draft, to: ev.type === 'transfer_begin' ? server : ev.to, index: c.generated, tokens: Math.max(1, left), pool: 0, count: 3, blockSize: 4, toRole: 'decode', crossGpu: false, ok: true, role: ev.type === 'join' ? 'unified' : ev.role, remaining: ev.type === 'free' ? 0 : ev.remaining, serverPool: 1 };
  },
  partition: (c, ev) => {
    const target = c.target ?? { prefill: ev.prefill, decode: ev.decode };
    const e = ev.type === 'worker_stop' ? c.epoch : c.epoch + 1;
    return { ...ev, epoch: e, fromEpoch: c.epoch, toEpoch: c.epoch + 1, fromRole: ev.role, toRole: ev.role, decode: c.rule === 'exact' ? 100 - ev.prefill : ev.decode, share: ev.role === 'prefill' ? target.prefill : target.decode };
  },
  worker: (c, ev) => ({ ...ev, req: c.fifo[0] ?? ev.req }),
  // A hit names the key the block is cached under (or a fresh requester); an insert and an evict its own key.
  block: (c, ev) => ({ ...ev, req: ev.type === 'hit' && c.owners.length ? `${c.owners[0]}x` : (c.owners[0] ?? ev.req), key: c.key ?? ev.key, held: 0 }),
};

describe('compiled machines agree with XState', () => {
  for (const name of Object.keys(MACHINES) as MachineName[]) {
    it(`${name}: every transition of random runs`, () => {
      const compiled = MACHINES[name];
      const machine = compiled.machine as AnyStateMachine;
      const taken = new Set<string>();
      fc.assert(
        fc.property(inputs[name], fc.array(eventsOf(name), { minLength: 20, maxLength: 80 }), (input, events) => {
          let [x] = initialTransition(machine, input as never);
          let c = { value: x.value as string, context: x.context };
          for (const [anyType, p, steered, pick] of events) {
            // Steered events never abort (unsteered ones do), so that runs live long enough to go deep.
            const enabled = [...(compiled.table.get(c.value)?.keys() ?? [])].filter((t) => t !== 'abort');
            const type = steered && enabled.length ? enabled[pick % enabled.length] : anyType;
            const raw = { ...p, type } as Ctx;
            const ev = steered && steer[name] ? steer[name](c.context as Ctx, raw) : raw;
            const next = fire(compiled as CompiledMachine<any, any>, c, ev as never, name); // eslint-disable-line @typescript-eslint/no-explicit-any
            [x] = transition(machine, x, ev as never);
            if ('protects' in next) {
              // XState ignores an event no transition takes; the compiled function names why.
              expect(x.value).toBe(c.value);
              expect(x.context).toEqual(c.context);
            } else {
              expect(x.value).toBe(next.value);
              expect(x.context).toEqual(next.context);
              taken.add(`${c.value}/${ev.type}`);
              c = next;
            }
          }
        }),
        { numRuns: 300, seed: 42 },
      );
      // The comparison means something only if the runs reach most (state, event) pairs of the machine.
      const pairs = new Set(compiled.edges.filter((e) => !e.variant).map((e) => `${e.state}/${e.event}`));
      const reached = [...pairs].filter((p) => taken.has(p)).length;
      expect(reached / pairs.size, `${name}: ${[...pairs].filter((p) => !taken.has(p)).join(', ')}`).toBeGreaterThanOrEqual(0.9);
    });
  }

  it('every guard and action a machine names has a definition (compiling would throw otherwise)', () => {
    for (const m of Object.values(MACHINES)) expect(m.edges.length).toBeGreaterThan(0);
  });
});

describe('request lifecycle on XState', () => {
  const start = (prompt = 4) => createActor(requestMachine, { input: { prompt, maxTokens: 2, pools: 1 } }).start();

  it('waiting → prefilling in chunks → prefilled → handed off → decoding → finished', () => {
    const a = start(6);
    a.send({ type: 'alloc', pool: 0, count: 2 });
    a.send({ type: 'schedule', worker: 'P0', role: 'prefill' });
    expect(a.getSnapshot().value).toBe('prefilling');
    a.send({ type: 'step_begin', worker: 'P0', role: 'prefill', tokens: 4, pool: 0, blockSize: 4, from: null, draft: 0 });
    a.send({ type: 'step_end', tokens: 4, draft: 0, accepted: 0 });
    expect(a.getSnapshot().value).toBe('prefilling');
    a.send({ type: 'step_begin', worker: 'P0', role: 'prefill', tokens: 2, pool: 0, blockSize: 4, from: null, draft: 0 });
    a.send({ type: 'step_end', tokens: 2, draft: 0, accepted: 0 });
    expect(a.getSnapshot().value).toBe('prefilled');
    a.send({ type: 'handoff', from: 'P0', to: 'D0', toRole: 'decode', crossGpu: false });
    expect(a.getSnapshot().context.server).toBe('D0');
    a.send({ type: 'token', index: 0 });
    a.send({ type: 'join', worker: 'D0', role: 'decode' });
    expect(a.getSnapshot().value).toBe('decoding');
    a.send({ type: 'step_begin', worker: 'D0', role: 'decode', tokens: 1, pool: 0, blockSize: 4, from: null, draft: 0 });
    a.send({ type: 'step_end', tokens: 1, draft: 0, accepted: 0 });
    a.send({ type: 'token', index: 1 });
    a.send({ type: 'finish' });
    expect(a.getSnapshot().value).toBe('finished');
    expect(a.getSnapshot().context.generated).toBe(2);
  });

  it('a decode step without a block for its position is not taken', () => {
    const a = start(4);
    a.send({ type: 'alloc', pool: 0, count: 1 });
    a.send({ type: 'schedule', worker: 'U0', role: 'unified' });
    a.send({ type: 'step_begin', worker: 'U0', role: 'unified', tokens: 4, pool: 0, blockSize: 4, from: null, draft: 0 });
    a.send({ type: 'step_end', tokens: 4, draft: 0, accepted: 0 });
    a.send({ type: 'token', index: 0 });
    a.send({ type: 'join', worker: 'U0', role: 'unified' });
    a.send({ type: 'step_begin', worker: 'U0', role: 'unified', tokens: 1, pool: 0, blockSize: 4, from: null, draft: 0 });
    expect(a.getSnapshot().context.inFlight).toBe(0); // position 5 needs a second block
    a.send({ type: 'alloc', pool: 0, count: 1 });
    a.send({ type: 'step_begin', worker: 'U0', role: 'unified', tokens: 1, pool: 0, blockSize: 4, from: null, draft: 0 });
    expect(a.getSnapshot().context.inFlight).toBe(1);
  });

  it('preemption keeps every generated token and recomputes prompt + output', () => {
    const a = start(4);
    a.send({ type: 'alloc', pool: 0, count: 2 });
    a.send({ type: 'schedule', worker: 'U0', role: 'unified' });
    a.send({ type: 'step_begin', worker: 'U0', role: 'unified', tokens: 4, pool: 0, blockSize: 4, from: null, draft: 0 });
    a.send({ type: 'step_end', tokens: 4, draft: 0, accepted: 0 });
    a.send({ type: 'token', index: 0 });
    a.send({ type: 'join', worker: 'U0', role: 'unified' });
    a.send({ type: 'preempt', worker: 'U0', anyPhase: false });
    expect(a.getSnapshot().value).toBe('retracting');
    a.send({ type: 'free', pool: 0, count: 2, remaining: 0, serverPool: -1 });
    expect(a.getSnapshot().value).toBe('waiting');
    expect(a.getSnapshot().context).toMatchObject({ generated: 1, computed: 0 });
    a.send({ type: 'schedule', worker: 'U0', role: 'unified' });
    a.send({ type: 'alloc', pool: 0, count: 2 });
    a.send({ type: 'step_begin', worker: 'U0', role: 'unified', tokens: 5, pool: 0, blockSize: 4, from: null, draft: 0 });
    expect(a.getSnapshot().context.inFlight).toBe(1); // the recompute covers prompt (4) + generated (1)
  });

  it('abort is allowed from every live state', () => {
    for (const value of LIVE_REQUEST_STATES) {
      const base = initialTransition(requestMachine, { prompt: 4, maxTokens: 0, pools: 1 })[0];
      const snap = requestMachine.resolveState({ value, context: base.context });
      const [next] = transition(requestMachine, snap, { type: 'abort' });
      expect(next.value, value).toBe('aborted');
    }
  });

  it('an ended request cannot end again', () => {
    const base = initialTransition(requestMachine, { prompt: 4, maxTokens: 0, pools: 1 })[0];
    for (const value of ['finished', 'aborted']) {
      const refusal = fire(MACHINES.request, { value, context: base.context }, { type: 'abort' }, 'request r1');
      expect(refusal).toMatchObject({ protects: 'EndsOnce' });
    }
  });
});

describe('KV machines on XState', () => {
  it('a block is free, owned, and free again; freeing it twice is not a transition', () => {
    const b = createActor(blockMachine).start();
    b.send({ type: 'alloc', req: 'r1', version: 1 });
    expect(b.getSnapshot().value).toBe('owned');
    b.send({ type: 'free', req: 'r2', held: 0, holders: '' });
    expect(b.getSnapshot().value).toBe('owned'); // not r2's to free
    b.send({ type: 'free', req: 'r1', held: 1, holders: 'step 1 of D0' });
    expect(b.getSnapshot().value).toBe('owned'); // still in use by a step
    b.send({ type: 'free', req: 'r1', held: 0, holders: '' });
    expect(b.getSnapshot().context).toMatchObject({ owners: [], inFreeList: 1 });
    expect(fire(MACHINES.block, { value: 'free', context: b.getSnapshot().context }, { type: 'free', req: 'r1', held: 0, holders: '' }, 'block 0')).toMatchObject({
      protects: 'FreeListUnique',
    });
  });

  it('a stale utilisation read lets a second worker take an owned block (the Z13 race), a current one does not', () => {
    const b = createActor(blockMachine).start();
    b.send({ type: 'alloc_take', req: 'r1', seen: 0, mine: false }); // taken, utilisation not written back yet
    b.send({ type: 'alloc_take', req: 'r1', seen: 0, mine: true }); // the same allocation does not take it twice
    expect(b.getSnapshot().context.owners).toEqual(['r1']);
    b.send({ type: 'alloc_take', req: 'r2', seen: 0, mine: false });
    expect(b.getSnapshot().context.owners).toEqual(['r1', 'r2']);
    const c = createActor(blockMachine).start();
    c.send({ type: 'alloc', req: 'r1', version: 1 });
    c.send({ type: 'alloc_take', req: 'r2', seen: 1, mine: false }); // read after the write-back: the block counted as used
    expect(c.getSnapshot().context.owners).toEqual(['r1']);
  });

  it('the pool lock admits one allocating worker at a time', () => {
    const p = createActor(poolMachine, { input: { locking: true } }).start();
    p.send({ type: 'alloc_query', worker: 'P0' });
    expect(p.getSnapshot().context.holder).toBe('P0');
    p.send({ type: 'alloc_query', worker: 'D0' });
    expect(p.getSnapshot().context.holder).toBe('P0');
    p.send({ type: 'alloc_commit', worker: 'P0' });
    expect(p.getSnapshot()).toMatchObject({ value: 'unlocked', context: { holder: null, version: 1 } });
    const lockless = createActor(poolMachine, { input: { locking: false } }).start();
    lockless.send({ type: 'alloc_query', worker: 'P0' });
    expect(lockless.getSnapshot().value).toBe('unlocked');
  });

  it('in decode-owned mode a prefill worker does not allocate', () => {
    const a = createActor(allocatorMachine, { input: { role: 'prefill', decodeOwned: true } }).start();
    a.send({ type: 'alloc_query', worker: 'P0', version: 0 });
    expect(a.getSnapshot().value).toBe('idle');
    const d = createActor(allocatorMachine, { input: { role: 'decode', decodeOwned: true } }).start();
    d.send({ type: 'alloc_query', worker: 'D0', version: 3 });
    expect(d.getSnapshot()).toMatchObject({ value: 'querying', context: { seen: 3 } });
  });
});

describe('partition and workers on XState', () => {
  it('stable → initialising → switching → stable at the next epoch', () => {
    const p = createActor(partitionMachine, { input: { prefill: 80, decode: 100, rule: 'oversubscribe', workers: 2 } }).start();
    p.send({ type: 'resize_begin', epoch: 1, prefill: 60, decode: 100, liveWorkers: 2 });
    p.send({ type: 'worker_start', epoch: 1, role: 'prefill', share: 60 });
    p.send({ type: 'worker_start', epoch: 1, role: 'decode', share: 100 });
    p.send({ type: 'worker_stop', epoch: 0 });
    expect(p.getSnapshot().value).toBe('initialising'); // delayed switch: old workers serve until all new are ready
    p.send({ type: 'worker_ready', epoch: 1 });
    expect(p.getSnapshot().value).toBe('initialising');
    p.send({ type: 'worker_ready', epoch: 1 });
    expect(p.getSnapshot().value).toBe('switching');
    p.send({ type: 'resize_end', epoch: 1 });
    expect(p.getSnapshot().value).toBe('switching'); // old workers still live
    p.send({ type: 'worker_stop', epoch: 0 });
    p.send({ type: 'worker_stop', epoch: 0 });
    p.send({ type: 'resize_end', epoch: 1 });
    expect(p.getSnapshot()).toMatchObject({ value: 'stable', context: { epoch: 1, prefill: 60, decode: 100 } });
  });

  it('a worker stops only when idle with its queue handed over, and keeps its FIFO in order', () => {
    const w = createActor(workerMachine, { input: { role: 'decode', epoch: 0, share: 100, gpu: 0, ready: true } }).start();
    w.send({ type: 'worker_ready' });
    w.send({ type: 'handoff', side: 'to', req: 'r1', queued: true });
    w.send({ type: 'handoff', side: 'to', req: 'r2', queued: true });
    w.send({ type: 'join', req: 'r2' });
    expect(w.getSnapshot().context.fifo).toEqual(['r1', 'r2']); // r2 is not at the head
    w.send({ type: 'join', req: 'r1' });
    w.send({ type: 'step_begin' });
    w.send({ type: 'migrate', side: 'from', req: 'r1', queued: false });
    w.send({ type: 'migrate', side: 'from', req: 'r2', queued: true });
    w.send({ type: 'worker_stop' });
    expect(w.getSnapshot().value).toBe('busy'); // after its current iteration only
    w.send({ type: 'step_end' });
    w.send({ type: 'worker_stop' });
    expect(w.getSnapshot().value).toBe('stopped');
  });
});
