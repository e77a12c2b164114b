import {
  checkAck,
  newEpoch,
  type AckOutcome,
  type Appended,
  type AppendRequest,
  type InboxDevice,
  type InboxEntry,
  type InboxInfo,
  type InboxOpened,
  type InboxPage,
  type Retention,
} from '../core/inbox.js';
import type { Uid } from '../core/types.js';
import { retainedMessage, type InboxStore, type RetainedEnvelope } from './broker.js';

/**
 * The in-memory inboxes (docs/delivery.md): one store per {@link MemoryCluster} (every node
 * of it shares it) and one per {@link LocalBroker}. Everything happens in one synchronous
 * step, so an append and its publish cannot interleave with another append: offsets reach
 * every node in order without a lock.
 */

/** Bytes counted per retained entry beyond its strings: the object, the slot, the numbers. */
const ENTRY_OVERHEAD = 64;
/** How often the shared timer sweeps expired meta, data and idempotency keys. */
const SWEEP_MS = 60_000;
/** A ring starts this small and doubles up to `retention.size`: most uids never fill one. */
const MIN_RING = 8;
/** Shared by every uid without retained entries, so meta-only uids hold no array. */
const NO_RING: (InboxEntry | undefined)[] = [];

/** A device's place, as the store keeps it. */
interface Device {
  cursor: number;
  lastSeen: number;
}

/**
 * One uid's inbox. Retained offsets are `lowest..top`, contiguous, in a ring where offset
 * `o` sits at `o % ring.length`; an empty slot is a hole (a `latest` value replaced by a
 * newer one), which still counts toward `retention.size`.
 */
class UidInbox {
  readonly uid: Uid;
  readonly epoch = newEpoch();
  top = 0;
  /** The lowest offset retained, holes included; `top + 1` when nothing is. */
  lowest = 1;
  /** The lowest offset holding an entry; `top + 1` when none does. Never below `lowest`. */
  head = 1;
  ring: (InboxEntry | undefined)[] = NO_RING;
  /** Entries in the ring (holes not counted). */
  count = 0;
  bytes = 0;
  /** key -> offset of its newest entry; only for uids that retained `latest` pushes. */
  latest: Map<string, number> | undefined = undefined;
  /** In the order last seen, least recently seen first. */
  readonly devices = new Map<string, Device>();
  lastUsed: number;
  /** Its place among all uids, by last use: the meta sweep's order. */
  readonly used: Link = linkOf(this);
  /** Its place among the uids holding entries, by last use: who loses data first past the budget. */
  readonly holding: Link = linkOf(this);

  constructor(uid: Uid, now: number) {
    this.uid = uid;
    this.lastUsed = now;
  }
}

/** Where an idempotency key's first push went, and when. */
interface FirstPush {
  readonly at: number;
  readonly epoch: string;
  readonly offset: number;
}

/** A place in an {@link Order}: one per uid and order, moved, never allocated again. */
interface Link {
  readonly rec: UidInbox;
  prev: Link | undefined;
  next: Link | undefined;
  linked: boolean;
}

function linkOf(rec: UidInbox): Link {
  return { rec, prev: undefined, next: undefined, linked: false };
}

/**
 * Uids in the order they were last moved to the end: a doubly linked list through links
 * the uids own. A Map's delete and set would keep the order too, but V8 rehashes its table
 * when one key is deleted and set again and again, so one hot uid among 10,000 cost about
 * 80 µs an append with two such orders (measured); a move here is a few pointer writes.
 */
class Order {
  head: Link | undefined;
  #tail: Link | undefined;

  /** Moves `link` to the end (least recently used first, most recently last). */
  toEnd(link: Link): void {
    if (link === this.#tail) return;
    this.remove(link);
    link.prev = this.#tail;
    if (this.#tail === undefined) this.head = link;
    else this.#tail.next = link;
    this.#tail = link;
    link.linked = true;
  }

  remove(link: Link): void {
    if (!link.linked) return;
    if (link.prev === undefined) this.head = link.next;
    else link.prev.next = link.next;
    if (link.next === undefined) this.#tail = link.prev;
    else link.next.prev = link.prev;
    link.prev = undefined;
    link.next = undefined;
    link.linked = false;
  }
}

/** What a {@link MemoryInbox} holds now. */
export interface MemoryInboxStats {
  /** Uids with an inbox (meta, with or without retained entries). */
  readonly uids: number;
  /** Retained entries over every uid. */
  readonly entries: number;
  /** Bytes of retained data, as counted against `retention.memoryBytes`. */
  readonly bytes: number;
}

/** The bytes an entry is counted for: strings are UTF-16 in memory. */
function sizeOf(entry: InboxEntry): number {
  return (entry.data.length + (entry.from?.length ?? 0) + (entry.key?.length ?? 0)) * 2 + ENTRY_OVERHEAD;
}

/**
 * An {@link InboxStore} in memory. Per uid: epoch, top, a ring buffer of the retained
 * entries and the device cursors. Answers are plain values, never promises.
 *
 * Bounds: `retention.size` entries per uid, `retention.ttlMs` per entry, and
 * `retention.memoryBytes` in all; past that, the uids used longest ago lose their data
 * first (their epoch, top and cursors stay, so their devices read `expired`, not a new
 * epoch). Meta lives `retention.metaTtlMs` after the uid's last append, open or ack. One
 * unref'd timer for the whole store sweeps what expired; it runs while the store holds
 * anything, with the retention of the latest call (every node passes the same). Reads
 * (`read`, `info`) trim what aged out but do not count as a use.
 *
 * `retention.size` below 1 is taken as 1: the newest push is always retained.
 */
export class MemoryInbox implements InboxStore {
  readonly #publish: (channel: string, message: string) => void;
  readonly #now: () => number;
  readonly #uids = new Map<Uid, UidInbox>();
  /** Every uid, least recently used (append, open, ack) first. */
  readonly #used = new Order();
  /** The uids holding entries, least recently used first. */
  readonly #holding = new Order();
  /** `uid \0 key` -> first push, in the order seen: one window for all, so expiry is from the head. */
  readonly #idempotent = new Map<string, FirstPush>();
  #entries = 0;
  #bytes = 0;
  #retention: Retention | undefined;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param publish - sends a retained push's envelope to the nodes, in the same synchronous
   *   step as its append (a {@link LocalBroker} passes a no-op: no other node exists).
   * @param now - the clock, ms since the epoch; tests pass their own.
   */
  constructor(publish: (channel: string, message: string) => void, now: () => number = Date.now) {
    this.#publish = publish;
    this.#now = now;
  }

  /** Uids, entries and bytes held now. */
  get stats(): MemoryInboxStats {
    return { uids: this.#uids.size, entries: this.#entries, bytes: this.#bytes };
  }

  append(uid: Uid, request: AppendRequest, envelope: RetainedEnvelope | undefined, retention: Retention): Appended {
    const now = this.#now();
    this.#use(retention);
    let idempotencyKey: string | undefined;
    if (request.idempotencyKey !== undefined) {
      this.#expireIdempotent(now, retention.idempotencyMs);
      idempotencyKey = `${uid}\0${request.idempotencyKey}`;
      const first = this.#idempotent.get(idempotencyKey);
      if (first !== undefined) return { epoch: first.epoch, offset: first.offset, duplicate: true };
    }
    const rec = this.#touch(this.#record(uid, now, retention) ?? this.#create(uid, now), now);
    // Trimmed before the offset is taken: what stays, plus the new entry, fits `size`.
    const size = Math.max(1, retention.size);
    this.#trimCount(rec, size - 1);
    this.#trimAge(rec, now, retention.ttlMs);
    const offset = ++rec.top;
    // The ring covers the entries, not the holes below the head: a `latest` key replaced
    // over and over keeps a small ring.
    const span = offset - rec.head + 1;
    if (rec.ring === NO_RING) rec.ring = new Array<InboxEntry | undefined>(Math.min(MIN_RING, size));
    else if (span > rec.ring.length || rec.ring.length > size) this.#resize(rec, Math.min(size, Math.max(span, rec.ring.length * 2)));
    const entry: InboxEntry = { offset, data: request.data, from: request.from, key: request.key, at: now };
    rec.ring[offset % rec.ring.length] = entry;
    const bytes = sizeOf(entry);
    rec.count++;
    rec.bytes += bytes;
    this.#entries++;
    this.#bytes += bytes;
    if (request.key !== undefined) {
      // Stored first, so the head never runs past the newest entry while the old one goes.
      rec.latest ??= new Map();
      const previous = rec.latest.get(request.key);
      rec.latest.set(request.key, offset);
      if (previous !== undefined) this.#drop(rec, previous);
    }
    this.#holding.toEnd(rec.holding);
    if (this.#bytes > retention.memoryBytes) this.#evict(rec, retention.memoryBytes);
    if (idempotencyKey !== undefined) this.#idempotent.set(idempotencyKey, { at: now, epoch: rec.epoch, offset });
    if (envelope !== undefined) this.#publish(envelope.channel, retainedMessage(envelope, offset, rec.epoch));
    return { epoch: rec.epoch, offset, duplicate: false };
  }

  open(uid: Uid, device: string, retention: Retention): InboxOpened {
    const now = this.#now();
    this.#use(retention);
    const rec = this.#touch(this.#record(uid, now, retention) ?? this.#create(uid, now), now);
    this.#trimAge(rec, now, retention.ttlMs);
    const known = rec.devices.get(device);
    let cursor: number | null = null;
    if (known === undefined) {
      if (rec.devices.size >= retention.maxDevices) this.#forgetLeastSeen(rec, retention.maxDevices - 1);
      if (retention.maxDevices > 0) rec.devices.set(device, { cursor: rec.top, lastSeen: now });
    } else {
      cursor = known.cursor;
      this.#seen(rec, device, known, now);
    }
    return { epoch: rec.epoch, top: rec.top, lowest: rec.lowest, cursor };
  }

  /**
   * Reads without refreshing the uid's meta. A uid without an inbox answers an empty page
   * with `epoch: ''`, `lowest: 1`, `top: 0`: the node opens the inbox before it reads, so
   * this is only what a read of an inbox that expired in between finds.
   */
  read(uid: Uid, after: number, limit: number, retention: Retention): InboxPage {
    const now = this.#now();
    const rec = this.#record(uid, now, retention);
    if (rec === undefined) return { epoch: '', lowest: 1, top: 0, entries: [] };
    this.#trimAge(rec, now, retention.ttlMs);
    const entries: InboxEntry[] = [];
    const ring = rec.ring;
    for (let o = Math.max(after + 1, rec.head); o <= rec.top && entries.length < limit; o++) {
      const entry = ring[o % ring.length];
      if (entry !== undefined) entries.push(entry);
    }
    return { epoch: rec.epoch, lowest: rec.lowest, top: rec.top, entries };
  }

  ack(uid: Uid, device: string, upTo: number, retention: Retention): AckOutcome {
    const now = this.#now();
    this.#use(retention);
    const rec = this.#record(uid, now, retention);
    const known = rec?.devices.get(device);
    const outcome = checkAck(known?.cursor ?? null, rec?.top ?? 0, upTo);
    if (outcome.ok && rec !== undefined && known !== undefined) {
      known.cursor = outcome.cursor;
      this.#seen(rec, device, known, now);
      this.#touch(rec, now);
    }
    return outcome;
  }

  /** Observes without refreshing the uid's meta. */
  info(uid: Uid, retention: Retention): InboxInfo {
    const now = this.#now();
    const rec = this.#record(uid, now, retention);
    if (rec === undefined) return { uid, epoch: null, top: 0, retained: { from: 1, to: 0, count: 0 }, devices: [] };
    this.#trimAge(rec, now, retention.ttlMs);
    const devices: InboxDevice[] = [...rec.devices].map(([device, d]) => ({ device, cursor: d.cursor, lastSeen: d.lastSeen }));
    devices.sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
    return { uid, epoch: rec.epoch, top: rec.top, retained: { from: rec.lowest, to: rec.top, count: rec.count }, devices };
  }

  /**
   * Drops the meta of uids unused for `metaTtlMs`, the entries older than `ttlMs` and the
   * idempotency keys past their window, with the retention of the latest call.
   * @internal the timer calls it; tests may.
   */
  sweep(): void {
    const retention = this.#retention;
    if (retention === undefined) return;
    const now = this.#now();
    for (let link = this.#used.head; link !== undefined && link.rec.lastUsed + retention.metaTtlMs <= now; link = this.#used.head) {
      this.#remove(link.rec);
    }
    // `next` is read first: a trim that empties a uid takes it out of the order.
    for (let link = this.#holding.head, next = link?.next; link !== undefined; link = next, next = link?.next) {
      this.#trimAge(link.rec, now, retention.ttlMs);
    }
    this.#expireIdempotent(now, retention.idempotencyMs);
    if (this.#uids.size === 0 && this.#idempotent.size === 0) this.close();
  }

  /** Stops the sweeping timer (the next call starts it again). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Remembers the retention for the sweep, and makes sure the sweep runs. */
  #use(retention: Retention): void {
    this.#retention = retention;
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.sweep();
    }, SWEEP_MS);
    this.#timer.unref();
  }

  /** The uid's inbox, unless it has none or its meta expired (then it is dropped now). */
  #record(uid: Uid, now: number, retention: Retention): UidInbox | undefined {
    const rec = this.#uids.get(uid);
    if (rec === undefined || rec.lastUsed + retention.metaTtlMs > now) return rec;
    this.#remove(rec);
    return undefined;
  }

  #create(uid: Uid, now: number): UidInbox {
    const rec = new UidInbox(uid, now);
    this.#uids.set(uid, rec);
    return rec;
  }

  /** Marks the uid used now: last in the meta sweep's order and in the eviction order. */
  #touch(rec: UidInbox, now: number): UidInbox {
    rec.lastUsed = now;
    this.#used.toEnd(rec.used);
    if (rec.holding.linked) this.#holding.toEnd(rec.holding);
    return rec;
  }

  #remove(rec: UidInbox): void {
    this.#dropData(rec);
    this.#used.remove(rec.used);
    this.#uids.delete(rec.uid);
  }

  /** Forgets every entry of `rec`, keeping its epoch, top and devices. */
  #dropData(rec: UidInbox): void {
    this.#entries -= rec.count;
    this.#bytes -= rec.bytes;
    rec.count = 0;
    rec.bytes = 0;
    rec.ring = NO_RING;
    rec.latest = undefined;
    rec.lowest = rec.top + 1;
    rec.head = rec.top + 1;
    this.#holding.remove(rec.holding);
  }

  /** Empties the slot of `offset`, if it is retained: a hole, or the head moving on. */
  #drop(rec: UidInbox, offset: number): void {
    if (offset < rec.head || offset > rec.top) return;
    const ring = rec.ring;
    const slot = offset % ring.length;
    const entry = ring[slot];
    if (entry === undefined) return;
    ring[slot] = undefined;
    const bytes = sizeOf(entry);
    rec.count--;
    rec.bytes -= bytes;
    this.#entries--;
    this.#bytes -= bytes;
    if (entry.key !== undefined && rec.latest?.get(entry.key) === offset) rec.latest.delete(entry.key);
    if (offset === rec.head) this.#advanceHead(rec);
  }

  /** Moves the head past holes to the next entry; with none left, the ring goes. */
  #advanceHead(rec: UidInbox): void {
    if (rec.count === 0) {
      this.#dropData(rec);
      return;
    }
    // The top always holds an entry while any is left: the scan stops there.
    const ring = rec.ring;
    while (rec.head < rec.top && ring[rec.head % ring.length] === undefined) rec.head++;
  }

  /** Keeps the newest `keep` offsets (holes count); with none left, `lowest` is `top + 1`. */
  #trimCount(rec: UidInbox, keep: number): void {
    const keepFrom = rec.top - keep + 1;
    if (rec.lowest >= keepFrom) return;
    // By offset, not by head: it ends however the ring was left.
    for (let o = rec.head; o < keepFrom && rec.count > 0; o++) this.#drop(rec, o);
    if (rec.count > 0) rec.lowest = keepFrom;
  }

  /** Drops the entries older than `ttlMs`, oldest first: offsets were appended in time order. */
  #trimAge(rec: UidInbox, now: number, ttlMs: number): void {
    while (rec.count > 0) {
      const entry = rec.ring[rec.head % rec.ring.length];
      if (entry === undefined || entry.at + ttlMs > now) return;
      rec.lowest = rec.head + 1;
      this.#drop(rec, rec.head);
    }
  }

  /** Moves the retained entries into a ring of `capacity` slots (at least the span kept). */
  #resize(rec: UidInbox, capacity: number): void {
    if (rec.ring === NO_RING) return;
    const old = rec.ring;
    const ring = new Array<InboxEntry | undefined>(capacity);
    for (let o = rec.head; o <= rec.top; o++) ring[o % capacity] = old[o % old.length];
    rec.ring = ring;
  }

  /** Past the byte budget: the data of the uids used longest ago goes first, then `current`'s oldest. */
  #evict(current: UidInbox, budget: number): void {
    // The head goes each time: it is the next one used longest ago.
    for (let link = this.#holding.head; link !== undefined && link.rec !== current && this.#bytes > budget; link = this.#holding.head) {
      this.#dropData(link.rec);
    }
    // Alone over the budget: its oldest go, but never the entry just retained.
    for (let o = current.head; this.#bytes > budget && current.count > 1 && o < current.top; o++) {
      this.#drop(current, o);
      current.lowest = o + 1;
    }
  }

  #seen(rec: UidInbox, device: string, known: Device, now: number): void {
    known.lastSeen = now;
    rec.devices.delete(device);
    rec.devices.set(device, known);
  }

  /** Forgets the devices seen longest ago until `keep` remain. */
  #forgetLeastSeen(rec: UidInbox, keep: number): void {
    for (const device of rec.devices.keys()) {
      if (rec.devices.size <= Math.max(keep, 0)) return;
      rec.devices.delete(device);
    }
  }

  #expireIdempotent(now: number, windowMs: number): void {
    for (const [key, first] of this.#idempotent) {
      if (first.at + windowMs > now) return;
      this.#idempotent.delete(key);
    }
  }
}
