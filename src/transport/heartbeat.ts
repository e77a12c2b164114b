/**
 * A timing wheel for liveness: one timer for all connections. Each connection sits in one
 * of `slots` buckets, and the wheel visits one bucket per `intervalMs / slots`, so a
 * 100,000-connection server sends its pings in small batches over the interval instead of
 * one long stall, and no connection owns a timer (Liveness asks for one bucket per tick:
 * `heartbeatSlots`).
 *
 * The same timer also runs a short tick (at most every {@link MAX_TICK_MS}) for deadlines
 * that must be kept more closely than a bucket's 2.5 s (login timeouts, close graces).
 *
 * @typeParam C - the connection type.
 */
export class Heartbeat<C extends { slot: number }> {
  readonly #slots: Set<C>[];
  readonly #timer: NodeJS.Timeout;
  readonly #bucketMs: number;
  #nextBucketAt: number;
  #next = 0;
  #cursor = 0;

  /**
   * @param intervalMs - how often each connection is visited.
   * @param visit - called for each connection of the bucket due; it may remove it.
   * @param everyTick - called at each tick (every min(interval / slots, 250 ms)), before
   *   the bucket, if one is due.
   */
  constructor(intervalMs: number, visit: (conn: C, now: number) => void, everyTick: (now: number) => void, slots = 10) {
    this.#slots = Array.from({ length: slots }, () => new Set<C>());
    this.#bucketMs = Math.max(1, Math.floor(intervalMs / slots));
    this.#nextBucketAt = Date.now() + this.#bucketMs;
    this.#timer = setInterval(
      () => {
        const now = Date.now();
        everyTick(now);
        if (now < this.#nextBucketAt) return;
        // A late tick (a busy event loop) visits one bucket, not a backlog of them.
        this.#nextBucketAt = Math.max(this.#nextBucketAt + this.#bucketMs, now);
        const slot = this.#slots[this.#cursor];
        this.#cursor = (this.#cursor + 1) % this.#slots.length;
        if (slot !== undefined) for (const conn of slot) visit(conn, now);
      },
      Math.min(MAX_TICK_MS, this.#bucketMs),
    );
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

/** The longest time between two ticks, in ms: how late a short deadline may be noticed. */
export const MAX_TICK_MS = 250;
