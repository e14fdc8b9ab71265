// A binary min-heap with a caller-given order. The simulator's event queue and the waiting queue are both
// heaps; their orders break every tie on a sequence number, so that pops are deterministic.

export class MinHeap<T> {
  private items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(item, items[parent])) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) this.siftDown(last, 0);
    return top;
  }

  /** Removes every item for which `drop` holds, then restores the heap: O(n). */
  removeWhere(drop: (item: T) => boolean): number {
    const before = this.items.length;
    this.items = this.items.filter((x) => !drop(x));
    this.heapify();
    return before - this.items.length;
  }

  /** Rebuilds the heap after the order changed: O(n). */
  heapify(): void {
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(this.items[i], i);
  }

  /** The items in pop order, without changing the heap: O(n log n). */
  sorted(): T[] {
    return this.items.slice().sort((a, b) => (this.less(a, b) ? -1 : this.less(b, a) ? 1 : 0));
  }

  /** The items in heap order (unsorted). */
  values(): readonly T[] {
    return this.items;
  }

  private siftDown(item: T, i: number): void {
    const items = this.items;
    const n = items.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.less(items[child + 1], items[child])) child++;
      if (!this.less(items[child], item)) break;
      items[i] = items[child];
      i = child;
    }
    items[i] = item;
  }
}
