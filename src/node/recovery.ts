import { randomBytes } from 'node:crypto';
import type { InboxStore } from '../broker/broker.js';
import { CloseCode } from '../core/close-codes.js';
import {
  isRetainedAfter,
  planRecovery,
  REPLAY_PAGE,
  type InboxEntry,
  type InboxPosition,
  type InboxWelcome,
  type Retention,
} from '../core/inbox.js';
import type { MaybePromise } from '../core/service.js';
import type { Logger, Uid } from '../core/types.js';
import type { ConnectionInbox, Hub, Recipient } from '../delivery/hub.js';

/** A store call under the node's deadline (none when alone). */
export type BoundCall = <T>(call: () => MaybePromise<T>, what: string) => MaybePromise<T>;

/** What a device is told at login: its welcome and the entries replayed after it, or why the login is refused. */
export type Opened = { welcome: InboxWelcome; entries: readonly InboxEntry[] } | { refused: string };

/**
 * Recovery of a uid's devices from its inbox (docs/delivery.md): a connection's inbox
 * position, the replay after its welcome, and the in-band resync when a live retained push
 * does not follow the connection's last one. Race-free as centrifuge does it: the
 * connection holds every push from before its inbox is read (`prepare`), the replay is
 * written, then what was held, each retained push once by offset.
 */
export class Recovery<C extends Recipient> {
  readonly #hub: Hub<C>;
  readonly #store: InboxStore;
  readonly #retention: Retention;
  readonly #bound: BoundCall;
  readonly #log: Logger;
  readonly #maxBufferedBytes: number;
  readonly #isBound: (conn: C, uid: Uid) => boolean;

  /** @param isBound - whether `conn` is still bound to `uid` (not closed, kicked, or closed as a slow consumer). */
  constructor(
    hub: Hub<C>,
    store: InboxStore,
    retention: Retention,
    bound: BoundCall,
    log: Logger,
    maxBufferedBytes: number,
    isBound: (conn: C, uid: Uid) => boolean,
  ) {
    this.#isBound = isBound;
    this.#hub = hub;
    this.#store = store;
    this.#retention = retention;
    this.#bound = bound;
    this.#log = log;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  /** Gives `conn` its inbox position, holding pushes until the replay is written. Before the connection is attached. */
  prepare(conn: C, uid: Uid, device: string | undefined): ConnectionInbox {
    const box: ConnectionInbox = {
      uid,
      device: device ?? newDevice(),
      epoch: '',
      last: 0,
      held: [],
      heldBytes: 0,
      resyncing: true,
    };
    conn.inbox = box;
    return box;
  }

  /**
   * Opens the device's place in the inbox and reads what it missed since `since` (or its
   * cursor). Called once the connection is attached (pushes are held from then on), so a
   * push is either read here or held, and written once either way.
   */
  async open(conn: C, since: InboxPosition | undefined): Promise<Opened> {
    const box = conn.inbox;
    if (box === undefined) throw new Error('recovery: open before prepare');
    const opened = await this.#bound(() => this.#store.open(box.uid, box.device, this.#retention), 'inbox open');
    const plan = planRecovery(opened, since);
    if ('refused' in plan) return plan;
    box.epoch = opened.epoch;
    let entries: readonly InboxEntry[] | 'gone' = [];
    if (plan.recovered && plan.after < opened.top) entries = await this.#read(box.uid, plan.after, opened.top, opened.epoch);
    const recovered = plan.recovered && entries !== 'gone';
    box.last = recovered ? plan.after : opened.top;
    const replay = entries === 'gone' || !recovered ? [] : entries;
    return {
      welcome: {
        device: box.device,
        epoch: opened.epoch,
        offset: opened.top,
        cursor: opened.cursor ?? opened.top,
        recovered,
        missed: replay.length,
        reason: recovered ? undefined : plan.recovered ? 'expired' : plan.reason,
      },
      entries: replay,
    };
  }

  /** Writes the replay (after the welcome), up to `top`, then what was held; goes live. */
  async replay(conn: C, entries: readonly InboxEntry[], top: number): Promise<void> {
    const box = conn.inbox;
    if (box === undefined) return;
    try {
      if (!(await this.#write(conn, box, entries))) return;
      // Holes (replaced `latest` values) are not written: everything up to the top is.
      if (top > box.last) box.last = top;
      await this.#settle(conn, box);
    } catch (err) {
      this.#failed(conn, err);
    }
  }

  /** A live retained push skipped ahead (the hub's gap listener): fills the gap from the inbox, in band. */
  resync(conn: C): void {
    const box = conn.inbox;
    if (box === undefined || box.resyncing) return;
    box.resyncing = true;
    this.#settle(conn, box).catch((err: unknown) => {
      this.#failed(conn, err);
    });
  }

  /**
   * Writes what is held until a push does not follow; then reads the gap from the inbox
   * (a new epoch: from its start, after a `resync` frame), writes it, and goes on.
   */
  async #settle(conn: C, box: ConnectionInbox): Promise<void> {
    for (;;) {
      if (this.#hub.release(conn) === 'live') break;
      const first = box.held?.find((item) => item.offset !== 0);
      if (first === undefined) continue;
      if (first.epoch !== box.epoch) {
        // The inbox was made again (Redis lost it): positions of the old epoch mean nothing.
        this.#hub.writeResync(conn, 'epoch_changed', first.epoch, 0);
        box.epoch = first.epoch;
        box.last = 0;
      }
      const upTo = first.offset - 1;
      if (upTo > box.last) {
        const entries = await this.#read(box.uid, box.last, upTo, box.epoch);
        if (entries === 'gone') {
          this.#hub.writeResync(conn, 'expired', box.epoch, upTo);
        } else if (!(await this.#write(conn, box, entries))) {
          return;
        }
        if (upTo > box.last) box.last = upTo;
      }
    }
    box.resyncing = false;
  }

  /**
   * The entries after `after` up to `top`, read a page at a time; `gone` when some of them
   * are no longer retained (or the inbox has another epoch): never a partial replay.
   */
  async #read(uid: Uid, after: number, top: number, epoch: string): Promise<readonly InboxEntry[] | 'gone'> {
    const entries: InboxEntry[] = [];
    let from = after;
    for (;;) {
      const page = await this.#bound(() => this.#store.read(uid, from, REPLAY_PAGE, this.#retention), 'inbox read');
      if (page.epoch !== epoch) return 'gone';
      if (from === after && !isRetainedAfter(after, page.lowest, top)) return 'gone';
      for (const entry of page.entries) {
        if (entry.offset > top) return entries;
        entries.push(entry);
      }
      const last = page.entries.at(-1);
      if (last === undefined || page.entries.length < REPLAY_PAGE || last.offset >= top) return entries;
      from = last.offset;
    }
  }

  /**
   * Writes replayed entries, waiting for the send buffer to drain below half the cap before
   * each page goes past it: a long replay never trips the slow-consumer policy. False when
   * the connection is gone.
   */
  async #write(conn: C, box: ConnectionInbox, entries: readonly InboxEntry[]): Promise<boolean> {
    const half = this.#maxBufferedBytes / 2;
    // Corked between waits: a page of frames goes out in a few syscalls, not one per frame.
    conn.cork?.();
    try {
      for (const entry of entries) {
        if (entry.offset <= box.last) continue;
        if (conn.bufferedBytes > half) {
          conn.uncork?.();
          await this.#drained(conn);
          conn.cork?.();
        }
        if (this.#hub.writeEntry(conn, box.uid, entry, box.epoch)) continue;
        if (!this.#isBound(conn, box.uid)) return false;
        // Refused by the `drop` policy and still open: once the buffer is empty, once more;
        // an entry larger than the whole cap can never be written, and is skipped.
        conn.uncork?.();
        await this.#drained(conn);
        conn.cork?.();
        if (!this.#hub.writeEntry(conn, box.uid, entry, box.epoch) && !this.#isBound(conn, box.uid)) return false;
      }
      return true;
    } finally {
      conn.uncork?.();
    }
  }

  #drained(conn: C): Promise<void> {
    const drain = conn.onDrain?.bind(conn);
    if (drain === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      drain(resolve);
    });
  }

  /** The inbox could not be read for a replay or resync: the client reconnects and recovers then. */
  #failed(conn: C, err: unknown): void {
    this.#log.warn({ err, uid: conn.inbox?.uid }, 'inbox: a replay could not be read; closing the connection so it recovers on reconnect');
    conn.inbox = undefined;
    conn.close(CloseCode.TryAgainLater, 'inbox unavailable; reconnect to recover');
  }
}

/** A device name for a client that sent none: 16 characters of base64url, for it to keep. */
function newDevice(): string {
  return randomBytes(12).toString('base64url');
}
