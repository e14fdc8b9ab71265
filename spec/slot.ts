// State slots (trace v3): the second resource of a hybrid model. A Mamba-style layer keeps one recurrent
// state per request instead of K/V per position; the engine keeps those states in a pool of slots beside the
// KV pool (SGLang: MambaPool, HybridReqToTokenPool; vLLM v1: a block of the mamba KV cache group). A slot is
// free or owned by one request, which alone advances it; it goes back when its request ends or is retracted.
import { setup } from 'xstate';
import { assignActions, guardChecks, type GuardDef, type MachineParts, type Update } from './machine-kit.ts';

export interface SlotContext {
  /** The request whose recurrent state the slot holds, or null when it is free. */
  owner: string | null;
}

export type SlotEvent = { type: 'slot_alloc'; req: string } | { type: 'slot_free'; req: string };

const slotGuards = {
  ownedByReq: {
    check: ({ context, event }) => context.owner === event.req,
    protects: 'SlotSingleOwner',
    explain: (c, e) => `holds the state of ${c.owner}, not of ${e.req}; only its owner gives it back`,
  },
} satisfies Record<string, GuardDef<SlotContext, SlotEvent>>;

const slotUpdates = {
  take: ({ event }) => ({ owner: event.req }),
  release: () => ({ owner: null }),
} satisfies Record<string, Update<SlotContext, SlotEvent>>;

export const slotParts: MachineParts<SlotContext, SlotEvent> = {
  guards: slotGuards,
  updates: slotUpdates,
  unhandled: (state, c, event) => {
    if (state === 'owned' && event.type === 'slot_alloc') return { protects: 'SlotSingleOwner', message: `holds the state of ${c.owner}; giving it to ${event.req} too would let two requests advance one state` };
    if (state === 'free' && event.type === 'slot_free') return { protects: 'SlotSingleOwner', message: `is already free; freeing it again would hand it out twice` };
    return { protects: 'LifecycleOrder', message: `is ${state}; '${event.type}' does not apply` };
  },
};

export const slotMachine = setup({
  types: { context: {} as SlotContext, events: {} as SlotEvent },
  guards: guardChecks(slotGuards),
  actions: assignActions(slotUpdates),
}).createMachine({
  id: 'slot',
  initial: 'free',
  context: { owner: null },
  states: {
    free: { on: { slot_alloc: { target: 'owned', actions: 'take' } } },
    owned: { on: { slot_free: { guard: 'ownedByReq', target: 'free', actions: 'release' } } },
  },
});
