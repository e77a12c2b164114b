/**
 * A timing wheel for liveness: one timer for all connections. Each connection sits in one
 * of `slots` buckets, and every tick visits one bucket, so a 100,000-connection server
 * sends its pings in ten small batches per interval instead of one long stall, and no
 * connection owns a timer.
 *
 * @typeParam C - the connection type.
 */
export class Heartbeat<C extends { slot: number }> {
  readonly #slots: Set<C>[];
  readonly #timer: NodeJS.Timeout;
  #next = 0;
  #cursor = 0;

  /**
   * @param intervalMs - how often each connection is visited.
   * @param visit - called for each connection of the bucket due; it may remove it.
   * @param everyTick - called at each tick (interval / slots), before the bucket.
   */
  constructor(
    intervalMs: number,
    visit: (conn: C, now: number) => void,
    everyTick: (now: number) => void,
    slots = 10,
  ) {
    this.#slots = Array.from({ length: slots }, () => new Set<C>());
    this.#timer = setInterval(() => {
      const now = Date.now();
      everyTick(now);
      const slot = this.#slots[this.#cursor];
      this.#cursor = (this.#cursor + 1) % this.#slots.length;
      if (slot !== undefined) for (const conn of slot) visit(conn, now);
    }, Math.max(1, Math.floor(intervalMs / slots)));
    // The wheel never keeps a process alive on its own.
    this.#timer.unref();
  }

  /** Number of connections on the wheel. */
  get size(): number {
    let n = 0;
    for (const slot of this.#slots) n += slot.size;
    return n;
  }

  add(conn: C): void {
    conn.slot = this.#next;
    this.#next = (this.#next + 1) % this.#slots.length;
    this.#slots[conn.slot]?.add(conn);
  }

  remove(conn: C): void {
    this.#slots[conn.slot]?.delete(conn);
  }

  /** Every connection on the wheel. */
  *all(): IterableIterator<C> {
    for (const slot of this.#slots) yield* slot;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
