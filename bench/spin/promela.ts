// Generates the Promela model of the bounded protocol that `pdspec explore` explores (semi-PD mode, lock
// allocator, allocation in one atomic step, reference spec): the same entities, the same environment
// choices as properties/explore/generator.ts, the same guards as the spec's machines, one SPIN transition
// (a d_step) per explorer transition. See bench/spin/README.md for the mapping and every difference.
//
// The bound is written as #defines at the head of the model. The number of requests and of blocks (and the
// most blocks one request can own) also shape the model's text — one do-option per request, per worker, per
// k-subset of blocks, and unrolled guards — so a different NREQ or NBLK means generating the model again:
//
//   npx tsx bench/spin/promela.ts [--requests N] [--blocks N] [--prompt N] [--output N] [--block-size N]
//                                 [--chunk N] [--resizes 0|1] [--aborts N] [--preemptions N] > model.pml
//
// With no options it prints the model at DEFAULT_CONFIG (bench/spin/pdspec.pml is that output).
import { DEFAULT_CONFIG, type ExploreConfig } from '../../properties/explore/config.ts';

/** The part of an ExploreConfig the Promela model takes (the mode, allocator and alloc steps are fixed). */
export interface SpinBound {
  requests: number;
  blocks: number;
  prompt: number;
  output: number;
  blockSize: number;
  chunk: number;
  /** 0 or 1 (the model has the workers of epochs 0 and 1 only). */
  resizes: number;
  aborts: number;
  preemptions: number;
}

export function boundOf(c: ExploreConfig): SpinBound {
  return {
    requests: c.requests,
    blocks: c.blocks,
    prompt: c.prompt,
    output: c.output,
    blockSize: c.blockSize,
    chunk: c.chunk,
    resizes: c.resizes,
    aborts: c.aborts,
    preemptions: c.preemptions,
  };
}

/** Why a bound (or the configuration around it) is outside what the Promela model covers; empty when it is covered. */
export function spinProblems(c: ExploreConfig): string[] {
  const p: string[] = [];
  if (c.mode !== 'semi-pd') p.push(`mode ${c.mode}: the Promela model is of semi-pd mode only`);
  if (c.allocator !== 'lock') p.push(`allocator ${c.allocator}: the Promela model is of the lock allocator only`);
  if (c.allocSteps === 'three') p.push(`alloc steps 'three': the Promela model allocates in one atomic step (as 'auto' does with the lock)`);
  if (c.variant) p.push(`variant ${c.variant}: the Promela model is of the reference spec only`);
  if (c.resizes > 1) p.push(`resizes ${c.resizes}: the Promela model has the workers of epochs 0 and 1 only (resizes 0 or 1)`);
  if (c.requests > 8) p.push('requests above 8: owners are kept as an 8-bit set');
  if (c.blocks > 32) p.push('blocks above 32: too many alloc options to generate');
  return p;
}

/** Most blocks one request can own: a decode step at position prompt + output needs ceil((prompt + output + 1) / blockSize). */
export function maxTable(b: SpinBound): number {
  return Math.min(b.blocks, Math.ceil((b.prompt + b.output + 1) / b.blockSize));
}

/**
 * Most blocks one allocation takes. A request always owns the blocks of the positions it computed (every step
 * is covered when it begins, and it frees only when retracted or ended), so a prefill need is at most
 * ceil(chunk / blockSize) and a decode need at most 1. The model asserts it in every state (check()).
 */
export function maxNeed(b: SpinBound): number {
  return Math.min(maxTable(b), Math.max(1, Math.ceil(b.chunk / b.blockSize)));
}

function subsets(n: number, k: number): number[][] {
  const out: number[][] = [];
  const pick = (start: number, acc: number[]) => {
    if (acc.length === k) return void out.push(acc.slice());
    for (let i = start; i < n; i++) {
      acc.push(i);
      pick(i + 1, acc);
      acc.pop();
    }
  };
  pick(0, []);
  return out;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export interface ModelOptions {
  /**
   * Keep which epoch-1 worker started first (default true). The explorer's state key lists workers in the order
   * they were added, so it tells apart two states that differ only in that order; without this variable the
   * Promela model merges them (see README: the one known source of extra explorer states).
   */
  startOrder?: boolean;
}

export function promelaModel(b: SpinBound, options: ModelOptions = {}): string {
  const startOrder = options.startOrder ?? true;
  const R = b.requests;
  const B = b.blocks;
  const MAXT = maxTable(b);
  const MAXNEED = maxNeed(b);
  const resize = b.resizes > 0;
  // Workers: 1 P0, 2 D0 (epoch 0); 3 P1, 4 D1 (epoch 1, started by the resize).
  const prefillWorkers = resize ? ['P0', 'P1'] : ['P0'];
  const decodeWorkers = resize ? ['D0', 'D1'] : ['D0'];
  const allWorkers = resize ? ['P0', 'D0', 'P1', 'D1'] : ['P0', 'D0'];
  const L: string[] = [];
  const emit = (s = '') => L.push(s);
  const or = (xs: string[]) => (xs.length ? xs.join(' || ') : '0');
  const and = (xs: string[]) => (xs.length ? xs.join(' && ') : '1');

  emit(`/* The bounded semi-PD protocol of \`pdspec explore\` (reference spec, lock allocator, one-step allocation).`);
  emit(`   Generated by bench/spin/promela.ts for ${R} request(s) and ${B} block(s); do not edit by hand.`);
  emit(`   One d_step = one explorer transition; the state vector holds the protocol's variables only. */`);
  emit();
  emit(`/* ---- the bound (NREQ, NBLK and MAXT also shape the text below: regenerate to change them) */`);
  emit(`#define NREQ      ${R}   /* requests that arrive */`);
  emit(`#define NBLK      ${B}   /* KV blocks in the pool */`);
  emit(`#define MAXT      ${MAXT}   /* most blocks one request can own: ceil((PROMPT + OUTPUT + 1) / BSIZE) */`);
  emit(`#define MAXNEED   ${MAXNEED}   /* most blocks one allocation takes: max(1, ceil(CHUNK / BSIZE)) (checked in every state) */`);
  emit(`#ifndef PROMPT`);
  emit(`#define PROMPT    ${b.prompt}   /* prompt length (tokens) */`);
  emit(`#endif`);
  emit(`#ifndef OUTPUT`);
  emit(`#define OUTPUT    ${b.output}   /* output limit (tokens) */`);
  emit(`#endif`);
  emit(`#ifndef BSIZE`);
  emit(`#define BSIZE     ${b.blockSize}   /* tokens per block */`);
  emit(`#endif`);
  emit(`#ifndef CHUNK`);
  emit(`#define CHUNK     ${b.chunk}   /* largest prefill chunk */`);
  emit(`#endif`);
  emit(`#define RESIZES   ${b.resizes}   /* 0 or 1 (the workers of epoch 1 are part of the text) */`);
  emit(`#ifndef ABORTS`);
  emit(`#define ABORTS    ${b.aborts}   /* aborts that may happen */`);
  emit(`#endif`);
  emit(`#ifndef PREEMPTS`);
  emit(`#define PREEMPTS  ${b.preemptions}   /* preemptions that may happen */`);
  emit(`#endif`);
  emit();
  emit(`/* request lifecycle (spec/request.ts) */`);
  emit(`#define WAIT 0  /* waiting    */`);
  emit(`#define PFG  1  /* prefilling */`);
  emit(`#define PFD  2  /* prefilled  */`);
  emit(`#define HOF  3  /* handedOff  */`);
  emit(`#define DEC  4  /* decoding   */`);
  emit(`#define RET  5  /* retracting */`);
  emit(`#define FIN  6  /* finished   */`);
  emit(`#define ABT  7  /* aborted    */`);
  emit(`/* workers (spec/partition.ts): ids, and states */`);
  emit(`#define P0 1`);
  emit(`#define D0 2`);
  emit(`#define P1 3`);
  emit(`#define D1 4`);
  emit(`#define NONE  0  /* not started (epoch-1 workers before worker_start) */`);
  emit(`#define START 1`);
  emit(`#define IDLE  2`);
  emit(`#define BUSY  3  /* an iteration in flight (at most one: the explorer runs one step per worker) */`);
  emit(`#define STOP  4`);
  emit(`/* partition states */`);
  emit(`#define STABLE 0`);
  emit(`#define INIT   1  /* initialising */`);
  emit(`#define SWITCH 2  /* switching */`);
  emit();
  emit(`/* ---- state */`);
  emit(`byte na;              /* requests arrived (they arrive first, in order) */`);
  emit(`byte npre;            /* preemptions so far (in the explorer's key) */`);
  emit(`byte nab;             /* requests aborted (the explorer counts them; derived) */`);
  emit(`/* requests: the request machine's state and context */`);
  emit(`byte rs[NREQ];        /* lifecycle state */`);
  emit(`byte gen[NREQ];       /* tokens generated */`);
  emit(`byte comp[NREQ];      /* positions computed */`);
  emit(`byte own[NREQ];       /* blocks owned (= length of its block table) */`);
  emit(`byte srv[NREQ];       /* serving worker, 0 none */`);
  emit(`bit  owed[NREQ];      /* tokenOwed */`);
  emit(`bit  dfr[NREQ];       /* deferredFree */`);
  emit(`/* the step in flight that uses the request (one at most): its writer, tokens, and how many of the`);
  emit(`   request's blocks it holds (the first ophl of its table: the copy the step took at its start) */`);
  emit(`byte opw[NREQ];`);
  emit(`byte optok[NREQ];`);
  emit(`byte ophl[NREQ];`);
  emit(`byte tbl[NREQ * MAXT]; /* block tables, in allocation order; unused entries 0 */`);
  emit(`/* blocks: the block machine (free/owned, owners, times on the free list) and the holds of steps in flight */`);
  emit(`bit  bst[NBLK];       /* 0 free, 1 owned */`);
  emit(`byte bown[NBLK];      /* owners, a set of requests (bit r) */`);
  emit(`byte bfl[NBLK] = 1;   /* times on the free list */`);
  emit(`byte hold[NBLK];      /* steps in flight that hold it */`);
  emit(`/* workers (index by id; 0 unused) */`);
  emit(`byte ws[5];           /* worker state */`);
  emit(`byte load[5];         /* requests served (FIFO included) */`);
  emit(`byte fq[2 * NREQ];    /* FIFO of D0 (first NREQ) and of D1 (next NREQ); unused entries 0 */`);
  emit(`byte flen[2];`);
  emit(`/* partition */`);
  emit(`byte pst;             /* STABLE, INIT, SWITCH */`);
  emit(`byte epoch;`);
  emit(`byte oldLive = 2;`);
  emit(`byte started;`);
  emit(`byte ready;`);
  emit(`byte needed;          /* derived: 2 once a resize began */`);
  if (startOrder) emit(`byte ord;             /* the epoch-1 worker started first (P1 or D1): the explorer's key lists workers in start order */`);
  emit();
  emit(`hidden byte i, j, k, x, y;`);
  emit();
  emit(`/* ---- expressions */`);
  emit(`#define ARR        (na == NREQ)`);
  emit(`#define LIVEW(w)   (ws[w] == IDLE || ws[w] == BUSY)`);
  emit(`#define LIVE(r)    (rs[r] < FIN)`);
  emit(`#define CEIL(a)    (((a) + BSIZE - 1) / BSIZE)`);
  emit(`#define MIN(a, b)  ((a) < (b) -> (a) : (b))`);
  emit(`#define LEN(r)     (PROMPT + gen[r])`);
  emit(`#define T(r, k)    tbl[(r) * MAXT + (k)]`);
  emit(`#define FX(w)      ((w) == D0 -> 0 : 1)`);
  emit(`#define FQ(w, k)   fq[FX(w) * NREQ + (k)]`);
  emit(`#define FLEN(w)    flen[FX(w)]`);
  emit(`/* noTokenOwed: no computed token waits to be appended (or the output limit was reached) */`);
  emit(`#define NOTOWED(r) (!owed[r] || gen[r] >= OUTPUT)`);
  emit(`/* blocks a request still needs (generator.ts): the next chunk's, or the next decode position's */`);
  emit(`#define NEEDP(r)   (CEIL(MIN(LEN(r), comp[r] + CHUNK)) - own[r])`);
  emit(`#define NEEDD(r)   (CEIL(comp[r] + 1) - own[r])`);
  emit(`#define NEED(r)    (rs[r] == PFG -> NEEDP(r) : (rs[r] == DEC -> NEEDD(r) : 0))`);
  emit(`#define TOKP(r)    MIN(CHUNK, LEN(r) - comp[r])`);
  emit(`#define NFREE      (${range(B).map((x) => `(bst[${x}] == 0)`).join(' + ')})`);
  emit(`/* some request cannot get the blocks it needs: the trigger of a preemption */`);
  emit(`#define SHORT      (${or(range(R).map((r) => `NEED(${r}) > NFREE`))})`);
  emit(`/* request r is in worker w's next batch (generator.ts: served by w, no op in flight, no token owed, and its blocks cover the step) */`);
  emit(`#define INBP(w, r) (srv[r] == w && opw[r] == 0 && !owed[r] && rs[r] == PFG && TOKP(r) > 0 && CEIL(comp[r] + TOKP(r)) <= own[r])`);
  emit(`#define INBD(w, r) (srv[r] == w && opw[r] == 0 && !owed[r] && rs[r] == DEC && CEIL(comp[r] + 1) <= own[r])`);
  emit(`#define INB(w, r)  ((w == P0 || w == P1) -> INBP(w, r) : INBD(w, r))`);
  for (const w of allWorkers) {
    const role = w.startsWith('P') ? 'INBP' : 'INBD';
    emit(`#define BATCH_${w}   (${or(range(R).map((r) => `${role}(${w}, ${r})`))})`);
  }
  emit(`/* every block of r's table is owned by r and held by no step in flight (the block machine's free guard) */`);
  for (const r of range(R)) {
    const terms = range(MAXT).map((k) => `(own[${r}] <= ${k} || (bst[T(${r}, ${k})] == 1 && (bown[T(${r}, ${k})] & ${1 << r}) != 0 && hold[T(${r}, ${k})] == 0))`);
    emit(`#define FREEABLE${r} (${and(terms)})`);
  }
  emit(`/* at rest (nothing enabled): every request ended (else a deadlock), ended requests released their blocks,`);
  emit(`   and with nothing live and nothing in flight every block is free */`);
  emit(`#define ALL_ENDED  (ARR && ${and(range(R).map((r) => `rs[${r}] >= FIN`))})`);
  emit(`#define RELEASED   (${and(range(R).map((r) => `!(rs[${r}] >= FIN && opw[${r}] == 0 && own[${r}] > 0)`))})`);
  emit(`#define NO_OPS     (${and(range(R).map((r) => `opw[${r}] == 0`))})`);
  emit(`#define ALL_FREE   (${and(range(B).map((x) => `bst[${x}] == 0`))})`);
  emit(`#define REST_OK    (ALL_ENDED && RELEASED && (!NO_OPS || ALL_FREE))`);
  emit();
  emit(`/* ---- the worker's side of moving requests (spec/partition.ts) */`);
  emit(`/* release: w stops serving r (load - 1; r leaves w's FIFO if it is on it) */`);
  emit(`inline release(w, r) {`);
  emit(`    load[w]--;`);
  emit(`    if`);
  emit(`    :: w == D0 || w == D1 ->`);
  emit(`        y = FX(w); j = 0;`);
  emit(`        do`);
  emit(`        :: j < flen[y] && fq[y * NREQ + j] != r -> j++`);
  emit(`        :: else -> break`);
  emit(`        od;`);
  emit(`        if`);
  emit(`        :: j < flen[y] ->`);
  emit(`            do`);
  emit(`            :: j + 1 < flen[y] -> fq[y * NREQ + j] = fq[y * NREQ + j + 1]; j++`);
  emit(`            :: else -> break`);
  emit(`            od;`);
  emit(`            flen[y]--; fq[y * NREQ + flen[y]] = 0`);
  emit(`        :: else -> skip`);
  emit(`        fi`);
  emit(`    :: else -> skip`);
  emit(`    fi`);
  emit(`}`);
  emit(`/* enqueue: r joins the end of decode worker w's FIFO (load + 1) */`);
  emit(`inline enqueue(w, r) {`);
  emit(`    assert(w == D0 || w == D1);`);
  emit(`    y = FX(w); fq[y * NREQ + flen[y]] = r; flen[y]++; load[w]++`);
  emit(`}`);
  emit(`/* queued: x = 1 when r is on w's FIFO */`);
  emit(`inline queued(w, r) {`);
  emit(`    x = 0;`);
  emit(`    if`);
  emit(`    :: w == D0 || w == D1 ->`);
  emit(`        y = FX(w); j = 0;`);
  emit(`        do`);
  emit(`        :: j < flen[y] -> if :: fq[y * NREQ + j] == r -> x = 1 :: else -> skip fi; j++`);
  emit(`        :: else -> break`);
  emit(`        od`);
  emit(`    :: else -> skip`);
  emit(`    fi`);
  emit(`}`);
  emit();
  emit(`/* ---- the state invariants (spec/invariants.ts checkState), after every transition */`);
  emit(`inline check() {`);
  emit(`    i = 0;`);
  emit(`    do`);
  emit(`    :: i < NBLK ->`);
  emit(`        assert(!(bfl[i] == 0 && bown[i] == 0));     /* BlocksAccounted */`);
  emit(`        assert((bown[i] & (bown[i] - 1)) == 0);     /* SingleOwner */`);
  emit(`        assert(bfl[i] <= 1);                        /* FreeListUnique */`);
  emit(`        assert(!(bfl[i] > 0 && bown[i] != 0));      /* FreeBlockUnowned */`);
  emit(`        assert(!(bfl[i] > 0 && hold[i] > 0));       /* NoFreeWhileInFlight */`);
  emit(`        i++`);
  emit(`    :: else -> break`);
  emit(`    od;`);
  emit(`    i = 0;`);
  emit(`    do`);
  emit(`    :: i < NREQ ->`);
  emit(`        assert(!(srv[i] != 0 && LIVE(i) && ws[srv[i]] == STOP));           /* ServedByLiveWorker */`);
  emit(`        assert(!(dfr[i] && opw[i] == 0));                                   /* EndedRequestsRelease */`);
  emit(`        assert(!(LIVE(i) && rs[i] != RET && opw[i] != 0 && opw[i] != srv[i])); /* SingleWriter */`);
  emit(`        assert(NEED(i) <= MAXNEED);                                        /* the model's alloc options cover every need */`);
  emit(`        k = 0;`);
  emit(`        do`);
  emit(`        :: opw[i] != 0 && k < ophl[i] -> assert((bown[T(i, k)] & (1 << i)) != 0); k++ /* SingleWriter: held blocks are its own */`);
  emit(`        :: else -> break`);
  emit(`        od;`);
  emit(`        i++`);
  emit(`    :: else -> break`);
  emit(`    od;`);
  emit(`    i = 1;`);
  emit(`    do`);
  emit(`    :: i <= ${resize ? 4 : 2} ->`);
  emit(`        assert(!(ws[i] == STOP && load[i] > 0));                            /* ServedByLiveWorker: nothing lost on stop */`);
  emit(`        if`);
  emit(`        :: i == D0 || i == D1 ->`);
  emit(`            assert(!(ws[i] == STOP && FLEN(i) > 0));                        /* ServedByLiveWorker: nothing lost on stop */`);
  emit(`            k = 0;`);
  emit(`            do`);
  emit(`            :: k < FLEN(i) -> assert(srv[FQ(i, k)] == i); k++              /* SingleServer */`);
  emit(`            :: else -> break`);
  emit(`            od`);
  emit(`        :: else -> skip`);
  emit(`        fi;`);
  emit(`        i++`);
  emit(`    :: else -> break`);
  emit(`    od;`);
  emit(`    i = 0; k = 0; j = 0; x = 0; y = 0   /* (a d_step must not end in a loop: SPIN's break would leave it) */`);
  emit(`}`);
  emit();
  emit(`active proctype pdspec() {`);
  emit(`    /* the initial state is the explorer's (nothing arrived); this first transition is the arrival of r0 */`);
  emit(`    d_step { ws[P0] = IDLE; ws[D0] = IDLE; na = 1 };`);
  emit(`end:`);
  emit(`    do`);
  emit(`    /* arrive: requests arrive first and in order; nothing else is proposed before all have */`);
  emit(`    :: d_step { na < NREQ -> na++ }`);
  for (const r of range(R)) {
    emit();
    emit(`    /* ==== request r${r} */`);
    emit(`    /* abort, from any live state (a step in flight defers the free to its completion) */`);
    emit(`    :: d_step { ARR && LIVE(${r}) && nab < ABORTS ->`);
    emit(`        if :: opw[${r}] != 0 -> dfr[${r}] = 1 :: else -> skip fi;`);
    emit(`        if :: srv[${r}] != 0 -> release(srv[${r}], ${r}) :: else -> skip fi;`);
    emit(`        srv[${r}] = 0; owed[${r}] = 0; rs[${r}] = ABT; nab++; check() }`);
    emit(`    /* token: append the token a completed step computed */`);
    emit(`    :: d_step { ARR && owed[${r}] && (rs[${r}] == PFD || rs[${r}] == HOF || rs[${r}] == DEC) && gen[${r}] < OUTPUT ->`);
    emit(`        gen[${r}]++; owed[${r}] = 0; check() }`);
    for (const w of prefillWorkers) {
      emit(`    /* schedule on ${w} */`);
      emit(`    :: d_step { ARR && rs[${r}] == WAIT && LIVEW(${w}) ->`);
      emit(`        rs[${r}] = PFG; srv[${r}] = ${w}; load[${w}]++; check() }`);
    }
    for (const d of decodeWorkers) {
      emit(`    /* handoff to ${d}'s FIFO */`);
      emit(`    :: d_step { ARR && rs[${r}] == PFD && LIVEW(srv[${r}]) && LIVEW(${d}) && opw[${r}] == 0 ->`);
      emit(`        release(srv[${r}], ${r}); srv[${r}] = ${d}; enqueue(${d}, ${r}); rs[${r}] = HOF; check() }`);
    }
    emit(`    /* join: the decode worker pops the FIFO head */`);
    emit(`    :: d_step { ARR && rs[${r}] == HOF && srv[${r}] != 0 && FLEN(srv[${r}]) > 0 && FQ(srv[${r}], 0) == ${r} && opw[${r}] == 0 && NOTOWED(${r}) ->`);
    emit(`        y = FX(srv[${r}]); j = 0;`);
    emit(`        do :: j + 1 < flen[y] -> fq[y * NREQ + j] = fq[y * NREQ + j + 1]; j++ :: else -> break od;`);
    emit(`        flen[y]--; fq[y * NREQ + flen[y]] = 0; rs[${r}] = DEC; check() }`);
    emit(`    /* finish (output limit reached): a step in flight defers the free */`);
    emit(`    :: d_step { ARR && (rs[${r}] == PFD || rs[${r}] == DEC) && gen[${r}] >= OUTPUT && NOTOWED(${r}) && LIVEW(srv[${r}]) ->`);
    emit(`        if :: rs[${r}] == DEC && opw[${r}] != 0 -> dfr[${r}] = 1 :: else -> skip fi;`);
    emit(`        release(srv[${r}], ${r}); srv[${r}] = 0; owed[${r}] = 0; rs[${r}] = FIN; check() }`);
    emit(`    /* free its whole table: retracted, or ended (after any deferring op completed); no block held */`);
    emit(`    :: d_step { ARR && own[${r}] > 0 && (rs[${r}] == RET || ((rs[${r}] == FIN || rs[${r}] == ABT) && !dfr[${r}])) && FREEABLE${r} ->`);
    emit(`        k = 0;`);
    emit(`        do`);
    emit(`        :: k < own[${r}] -> x = T(${r}, k); bst[x] = 0; bown[x] = bown[x] & ${255 - (1 << r)}; bfl[x]++; T(${r}, k) = 0; k++`);
    emit(`        :: else -> break`);
    emit(`        od;`);
    emit(`        own[${r}] = 0;`);
    emit(`        if :: rs[${r}] == RET -> rs[${r}] = WAIT :: else -> skip fi; check() }`);
    emit(`    /* preempt (retract) a decoding request when some request is short of blocks */`);
    emit(`    :: d_step { ARR && npre < PREEMPTS && rs[${r}] == DEC && !owed[${r}] && srv[${r}] != 0 && LIVEW(srv[${r}]) && SHORT ->`);
    emit(`        release(srv[${r}], ${r}); srv[${r}] = 0; comp[${r}] = 0; owed[${r}] = 0; rs[${r}] = RET; npre++; check() }`);
    emit(`    /* alloc by its worker, under the pool lock in one step: every k-subset of the free blocks, k = its need */`);
    for (let k = 1; k <= MAXNEED; k++) {
      for (const s of subsets(B, k)) {
        const guard = s.map((x) => `bst[${x}] == 0`).join(' && ');
        const take = s.map((x, i) => `bst[${x}] = 1; bown[${x}] = bown[${x}] | ${1 << r}; bfl[${x}] = 0; T(${r}, own[${r}] + ${i}) = ${x}`).join('; ');
        emit(`    :: d_step { ARR && (rs[${r}] == PFG || rs[${r}] == DEC) && NEED(${r}) == ${k} && ${guard} && LIVEW(srv[${r}]) ->`);
        emit(`        ${take}; own[${r}] = own[${r}] + ${k}; check() }`);
      }
    }
    if (resize) {
      for (const [o, s] of [
        ['P0', 'P1'],
        ['D0', 'D1'],
      ]) {
        emit(`    /* migrate from ${o} to its successor ${s} (switching; no op in flight) */`);
        emit(`    :: d_step { ARR && pst == SWITCH && srv[${r}] == ${o} && rs[${r}] >= PFG && rs[${r}] <= DEC && opw[${r}] == 0 && LIVEW(${o}) && LIVEW(${s}) ->`);
        emit(`        queued(${o}, ${r}); release(${o}, ${r});`);
        emit(`        if :: x -> enqueue(${s}, ${r}) :: else -> load[${s}]++ fi;`);
        emit(`        srv[${r}] = ${s}; x = 0; check() }`);
      }
    }
  }
  emit();
  emit(`    /* ==== steps: a worker with no iteration in flight runs one over every request it can advance */`);
  for (const w of allWorkers) {
    const inb = w.startsWith('P') ? 'INBP' : 'INBD';
    emit(`    :: d_step { ARR && ws[${w}] == IDLE && BATCH_${w} ->`);
    emit(`        i = 0;`);
    emit(`        do`);
    emit(`        :: i < NREQ ->`);
    emit(`            if`);
    emit(`            :: ${inb}(${w}, i) ->`);
    if (w.startsWith('P')) emit(`                optok[i] = TOKP(i);`);
    else emit(`                assert(comp[i] + 1 <= LEN(i)); optok[i] = 1;        /* chunkFits */`);
    emit(`                opw[i] = ${w}; ophl[i] = own[i]; k = 0;`);
    emit(`                do :: k < own[i] -> hold[T(i, k)]++; k++ :: else -> break od`);
    emit(`            :: else -> skip`);
    emit(`            fi;`);
    emit(`            i++`);
    emit(`        :: else -> break`);
    emit(`        od;`);
    emit(`        ws[${w}] = BUSY; check() }`);
    emit(`    :: d_step { ARR && ws[${w}] == BUSY ->`);
    emit(`        i = 0;`);
    emit(`        do`);
    emit(`        :: i < NREQ ->`);
    emit(`            if`);
    emit(`            :: opw[i] == ${w} ->`);
    emit(`                if`);
    emit(`                :: rs[i] == PFG || rs[i] == DEC ->`);
    emit(`                    comp[i] = comp[i] + optok[i]; owed[i] = (comp[i] == LEN(i));`);
    emit(`                    if :: rs[i] == PFG && comp[i] == LEN(i) -> rs[i] = PFD :: else -> skip fi`);
    emit(`                :: rs[i] == RET || rs[i] == FIN || rs[i] == ABT -> dfr[i] = 0   /* the deferred free may happen now */`);
    emit(`                :: else -> assert(false)`);
    emit(`                fi;`);
    emit(`                k = 0;`);
    emit(`                do :: k < ophl[i] -> hold[T(i, k)]--; k++ :: else -> break od;`);
    emit(`                opw[i] = 0; optok[i] = 0; ophl[i] = 0`);
    emit(`            :: else -> skip`);
    emit(`            fi;`);
    emit(`            i++`);
    emit(`        :: else -> break`);
    emit(`        od;`);
    emit(`        ws[${w}] = IDLE; check() }`);
  }
  if (resize) {
    emit();
    emit(`    /* ==== resize: new workers start and become ready (delayed switch), old ones hand over and stop */`);
    emit(`    :: d_step { ARR && pst == STABLE && epoch < RESIZES ->`);
    emit(`        pst = INIT; needed = 2; oldLive = 2; started = 0; ready = 0; check() }`);
    for (const [o, s] of [
      ['P0', 'P1'],
      ['D0', 'D1'],
    ]) {
      emit(`    :: d_step { ARR && pst == INIT && ws[${s}] == NONE && ws[${o}] != STOP && started < needed ->`);
      emit(`        ws[${s}] = START; started++;${startOrder ? ` if :: ord == 0 -> ord = ${s} :: else -> skip fi;` : ''} check() }`);
      emit(`    :: d_step { ARR && pst == INIT && ws[${s}] == START ->`);
      emit(`        ws[${s}] = IDLE; ready++; if :: ready == needed && started == needed -> pst = SWITCH :: else -> skip fi; check() }`);
      emit(`    :: d_step { ARR && pst == SWITCH && ws[${o}] == IDLE && load[${o}] == 0 ${o === 'D0' ? '&& FLEN(D0) == 0 ' : ''}->`);
      emit(`        ws[${o}] = STOP; oldLive--; check() }`);
    }
    emit(`    :: d_step { ARR && pst == SWITCH && ws[P0] == STOP && ws[D0] == STOP && oldLive == 0 ->`);
    emit(`        pst = STABLE; epoch++; oldLive = needed; check() }`);
  }
  emit();
  emit(`    /* at rest: executable only when nothing else is and the rest checks fail (a deadlock, or a leak) */`);
  emit(`    :: timeout && !REST_OK -> assert(REST_OK)`);
  emit(`    od`);
  emit(`}`);
  return L.join('\n') + '\n';
}

function parseArgs(argv: string[]): SpinBound {
  const b = boundOf(DEFAULT_CONFIG);
  const names: Record<string, keyof SpinBound> = {
    '--requests': 'requests',
    '--blocks': 'blocks',
    '--prompt': 'prompt',
    '--output': 'output',
    '--block-size': 'blockSize',
    '--chunk': 'chunk',
    '--resizes': 'resizes',
    '--aborts': 'aborts',
    '--preemptions': 'preemptions',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    const v = Number(argv[i + 1]);
    if (!key || !Number.isInteger(v) || v < 0) throw new Error(`usage: npx tsx bench/spin/promela.ts [${Object.keys(names).join(' N] [')} N]`);
    b[key] = v;
  }
  return b;
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(promelaModel(parseArgs(process.argv.slice(2))));
