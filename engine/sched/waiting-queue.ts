// The waiting queue (vLLM's sched/request_queue.py): requests not yet admitted to prefill, retracted ones
// first, then new ones first come first served or shortest prompt first, as the policy says. Entries that
// left it (by abort) stay in the heap and are dropped lazily when they reach the head.
import type { PrefillOrder } from '../config.ts';
import { MinHeap } from '../sim/heap.ts';
import type { Req } from '../state.ts';

export class WaitingQueue {
  private order: PrefillOrder = 'fcfs';
  private readonly heap = new MinHeap<Req>((a, b) => this.before(a, b));

  private before(a: Req, b: Req): boolean {
    if (a.waitClass !== b.waitClass) return a.waitClass < b.waitClass;
    if (this.order === 'shortest-prompt-first' && a.waitClass === 1 && a.length !== b.length) return a.length < b.length;
    return a.idx < b.idx;
  }

  enqueue(r: Req): void {
    r.state = 'waiting';
    r.inWaiting = true;
    this.heap.push(r);
  }

  /** The head (entries that left the queue are dropped on the way). */
  head(): Req | undefined {
    let r = this.heap.peek();
    while (r && !r.inWaiting) {
      this.heap.pop();
      r = this.heap.peek();
    }
    return r;
  }

  /** Takes the head, which `head()` just returned, out of the queue for admission. */
  admitHead(r: Req): void {
    this.heap.pop();
    r.inWaiting = false;
    r.waitClass = 1;
  }

  setOrder(order: PrefillOrder): void {
    if (order === this.order) return;
    this.order = order;
    this.heap.heapify();
  }

  /** The requests waiting, in pop order. */
  inOrder(): Req[] {
    return this.heap.sorted().filter((r) => r.inWaiting);
  }
}
