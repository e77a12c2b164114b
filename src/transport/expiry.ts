/**
 * Token expiries without a timer per connection: connections sit in one-second buckets
 * keyed by when their token expires, and the shared heartbeat tick takes the buckets that
 * are due. Moving a connection (a refreshed token) is O(1).
 *
 * @typeParam C - the connection type; `expiresAt` is ms since the epoch, 0 for none.
 */
export class ExpiryQueue<C extends { expiresAt: number }> {
  readonly #buckets = new Map<number, Set<C>>();
  #oldest = Number.POSITIVE_INFINITY;

  /** Number of connections waiting to expire. */
  get size(): number {
    let n = 0;
    for (const bucket of this.#buckets.values()) n += bucket.size;
    return n;
  }

  /** Sets (or clears, with 0) when `conn` expires. */
  set(conn: C, expiresAt: number): void {
    this.delete(conn);
    conn.expiresAt = expiresAt;
    if (expiresAt === 0) return;
    const key = Math.ceil(expiresAt / 1000);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = new Set();
      this.#buckets.set(key, bucket);
    }
    bucket.add(conn);
    if (key < this.#oldest) this.#oldest = key;
  }

  delete(conn: C): void {
    if (conn.expiresAt === 0) return;
    const key = Math.ceil(conn.expiresAt / 1000);
    const bucket = this.#buckets.get(key);
    bucket?.delete(conn);
    if (bucket?.size === 0) this.#buckets.delete(key);
    conn.expiresAt = 0;
  }

  /** Removes and returns every connection whose token has expired at `now`. */
  due(now: number): C[] {
    const nowKey = Math.floor(now / 1000);
    if (this.#oldest > nowKey) return [];
    const out: C[] = [];
    let oldest = Number.POSITIVE_INFINITY;
    for (const [key, bucket] of this.#buckets) {
      if (key <= nowKey) {
        for (const conn of bucket) {
          conn.expiresAt = 0;
          out.push(conn);
        }
        this.#buckets.delete(key);
      } else if (key < oldest) {
        oldest = key;
      }
    }
    this.#oldest = oldest;
    return out;
  }
}
