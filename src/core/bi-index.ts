/**
 * A many-to-many index kept in both directions: each left key to its right keys and each
 * right key to its left keys, so both questions cost one lookup. Group membership is one
 * (group -> uids, uid -> groups), kept by the registry for one process and by the
 * in-memory brokers for a cluster. Pure: no I/O. Empty sets are deleted at once, so the
 * index holds only keys that have a pair.
 */
export class BiIndex<L, R> {
  readonly #rights = new Map<L, Set<R>>();
  readonly #lefts = new Map<R, Set<L>>();

  /** Left keys with at least one pair. */
  get leftCount(): number {
    return this.#rights.size;
  }

  /** Right keys with at least one pair. */
  get rightCount(): number {
    return this.#lefts.size;
  }

  /** Adds the pair; returns false if it was there already. */
  add(left: L, right: R): boolean {
    if (!addTo(this.#rights, left, right)) return false;
    addTo(this.#lefts, right, left);
    return true;
  }

  /** Removes the pair; returns false if it was not there. */
  delete(left: L, right: R): boolean {
    if (!deleteFrom(this.#rights, left, right)) return false;
    deleteFrom(this.#lefts, right, left);
    return true;
  }

  has(left: L, right: R): boolean {
    return this.#rights.get(left)?.has(right) === true;
  }

  /** The right keys paired with `left` (a live view: do not change them while iterating it). */
  rightsOf(left: L): ReadonlySet<R> {
    return this.#rights.get(left) ?? (EMPTY as ReadonlySet<R>);
  }

  /** The left keys paired with `right` (a live view: do not change them while iterating it). */
  leftsOf(right: R): ReadonlySet<L> {
    return this.#lefts.get(right) ?? (EMPTY as ReadonlySet<L>);
  }
}

const EMPTY: ReadonlySet<unknown> = new Set();

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  } else if (set.has(value)) {
    return false;
  }
  set.add(value);
  return true;
}

function deleteFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  const set = map.get(key);
  if (set?.delete(value) !== true) return false;
  if (set.size === 0) map.delete(key);
  return true;
}
