import { CloseCode, fitsCloseReason, MAX_CLOSE_REASON_BYTES } from '../core/close-codes.js';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import type { PushResult } from '../core/service.js';
import type { Data, Group, Uid } from '../core/types.js';
import type { InboxEntry } from '../core/inbox.js';
import type { Codec } from '../protocol/codec.js';
import { messageFrame, resyncFrame, type RetainedPart, type Scope } from '../protocol/json-v1.js';
import type { Registry } from '../registry/registry.js';
import { PushFrames } from './push-frames.js';
import { encodeTextFrame } from './ws-frame.js';

/**
 * A v1 connection's place in its uid's inbox (docs/delivery.md), kept on the connection:
 * one object per connection, set by the node at login when the inbox is on.
 */
export interface ConnectionInbox {
  readonly uid: Uid;
  readonly device: string;
  /** The epoch of the offsets below. */
  epoch: string;
  /** The highest offset written to the connection: a retained push at or below it is not written again. */
  last: number;
  /**
   * While the node replays or resyncs: every push that arrives meanwhile, in order, written
   * after the replay (retained ones once each, by offset). Undefined when live.
   */
  held: HeldFrame[] | undefined;
  heldBytes: number;
  /** Whether the node is resynchronising this connection now. */
  resyncing: boolean;
}

/** A push held for a connection during its replay; `offset` 0 for one not retained. */
export interface HeldFrame {
  readonly frame: Buffer;
  readonly offset: number;
  readonly epoch: string;
}

/** What {@link Hub.release} found: all written, or a push that does not follow (a gap or another epoch). */
export type Released = 'live' | 'gap';

/**
 * What the hub needs from a connection: how much it already holds unsent, a way to write
 * a ready frame, and a way to close it. The transport implements it.
 */
export interface Recipient {
  /** The protocol the connection speaks, so it gets the frame of its codec. */
  readonly codec: Codec;
  /** Bytes queued for this connection and not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** Writes a complete WebSocket frame; returns false if the connection is not open. */
  writeFrame(frame: Buffer): boolean;
  /** Starts the closing handshake with `code` and `reason`. */
  close(code: number, reason: string): void;
  /**
   * Set by the node once the connection may receive pushes: after its login reply, which
   * waits until a push sent through any node reaches it. A bound connection that is not
   * attached yet is skipped, so nothing reaches a client before its login reply.
   */
  attached: boolean;
  /** The connection's place in its inbox; undefined for seed connections and with the inbox off. */
  inbox?: ConnectionInbox | undefined;
  /** Calls `listener` once the send buffer has drained (or the connection is gone): replay pages wait for it. */
  onDrain?(listener: () => void): void;
  /** Holds writes until {@link uncork}, to send a replay's frames in few syscalls. */
  cork?(): void;
  uncork?(): void;
  /**
   * The hub's turn of the connection's last write: a second write in the same turn corks
   * the connection until the turn ends (see {@link Hub.write}). Kept by the hub; declared
   * by the transport so that the field is part of the connection's shape from the start.
   */
  writeTurn?: number;
}

/**
 * What happens to a message for a connection whose send buffer is over
 * `maxBufferedBytes`:
 * - `close`: the connection is unbound at once and closed with 4001 (slow consumer), so
 *   it can reconnect and recover; the default.
 * - `drop`: the message is dropped for that connection only and counted; the connection
 *   stays.
 */
export type SlowConsumerPolicy = 'close' | 'drop';

/** Options of the {@link Hub}. */
export interface HubOptions<C extends Recipient = Recipient> {
  /**
   * Send-buffer cap per connection, in bytes. A write that would take a connection past it
   * triggers the slow-consumer policy.
   * @defaultValue 1048576 (1 MiB, as Workerman's maxSendBufferSize)
   */
  maxBufferedBytes: number;
  /** @defaultValue 'close' */
  slowConsumerPolicy: SlowConsumerPolicy;
  /** Called when the slow-consumer policy closed or skipped a connection. */
  onSlowConsumer?: ((conn: C, uid: Uid | undefined) => void) | undefined;
}

/** Called with a connection that got a retained push that does not follow its last one: it needs a resync. */
export type GapListener<C> = (conn: C) => void;

/** Delivery counters, monotonic since the hub was made. */
export interface HubStats {
  /** Frames built: one per push and codec in use, whatever the number of recipients. */
  framesEncoded: number;
  /** Frames written to connections. */
  framesWritten: number;
  /** Bytes written to connections. */
  bytesWritten: number;
  /** Frames not written because of the slow-consumer policy. */
  framesDropped: number;
  /** Connections closed by the slow-consumer policy. */
  slowConsumersClosed: number;
  /**
   * Pushes to a uid that had no connection here (dropped, as the seed does). On a cluster
   * node the uid may be online on another; the server's `dropped.offline` counts only
   * pushes that no node could deliver.
   */
  offlineDrops: number;
}

/**
 * The one place that delivers. Every push encodes its frame once and writes the same bytes
 * to each recipient, applying the send-buffer cap on the way.
 */
export class Hub<C extends Recipient = Recipient> {
  readonly #registry: Registry<C>;
  readonly #maxBufferedBytes: number;
  readonly #policy: SlowConsumerPolicy;
  readonly #onSlowConsumer: HubOptions<C>['onSlowConsumer'];
  readonly #stats: HubStats = {
    framesEncoded: 0,
    framesWritten: 0,
    bytesWritten: 0,
    framesDropped: 0,
    slowConsumersClosed: 0,
    offlineDrops: 0,
  };
  readonly #countEncode = (): void => {
    this.#stats.framesEncoded++;
  };
  // The fan-out in progress, in fields: one bound method for Registry.forEachOf, not a
  // closure per call. A write can call out (the slow-consumer listener), and a listener
  // may push; #fanOut saves and restores these around its loop, so a push made during a
  // fan-out is a fan-out of its own and the outer one goes on where it was.
  #pending: PushFrames | undefined;
  #pendingUid: Uid = '';
  #written = 0;
  readonly #writePending = (conn: C): void => {
    if (this.#pending === undefined || !conn.attached) return;
    if (this.#deliver(conn, this.#pending, this.#pendingUid)) this.#written++;
  };
  /** Set by the node when the inbox is on: a connection's retained pushes skipped ahead. */
  onGap: GapListener<C> | undefined;
  /**
   * Write coalescing. A turn is what runs synchronously before the next microtask
   * checkpoint: one socket read and the pushes it carried, a broadcast, a batch from the
   * broker. Connections written to twice in one turn are corked and listed here, and
   * uncorked together when it ends, so their frames leave in one writev each.
   */
  #turn = 1;
  #turnEnding = false;
  readonly #corked: C[] = [];
  readonly #endTurn = (): void => {
    this.#turnEnding = false;
    this.#turn++;
    const corked = this.#corked;
    // Uncorking writes; a write it causes (none today) would start a new turn.
    for (let i = 0; i < corked.length; i++) corked[i]?.uncork?.();
    corked.length = 0;
  };

  constructor(registry: Registry<C>, options: HubOptions<C>) {
    this.#registry = registry;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#policy = options.slowConsumerPolicy;
    this.#onSlowConsumer = options.onSlowConsumer;
  }

  /** A snapshot of the delivery counters. */
  get stats(): Readonly<HubStats> {
    return { ...this.#stats };
  }

  /** Number of online uids. */
  get onlineCount(): number {
    return this.#registry.uidCount;
  }

  /** Number of logged-in connections, over all uids. */
  get connectionCount(): number {
    return this.#registry.connectionCount;
  }

  /** Whether `uid` has at least one logged-in connection. */
  isOnline(uid: Uid): boolean {
    return this.#registry.has(uid);
  }

  /** Number of logged-in connections of `uid`. */
  connectionsOf(uid: Uid): number {
    return this.#registry.countOf(uid);
  }

  /**
   * Pushes `data` to every connection of `uid`. Returns how many connections it was
   * written to (0 when the uid is offline: the push is dropped, as in the seed).
   *
   * @param from - the sender's uid, or null (the default) for the server.
   */
  sendToUid(uid: Uid, data: Data, from: Uid | null = null): number {
    if (!this.#registry.has(uid)) {
      this.#stats.offlineDrops++;
      return 0;
    }
    return this.#fanOut(uid, this.#frames(data, from, 'uid', uid));
  }

  /** Pushes `data` to every connection of each uid, encoding it once per codec. */
  sendToUids(uids: Iterable<Uid>, data: Data, from: Uid | null = null): PushResult {
    let frames: PushFrames | undefined;
    let online = 0;
    let connections = 0;
    for (const uid of new Set(uids)) {
      if (!this.#registry.has(uid)) {
        this.#stats.offlineDrops++;
        continue;
      }
      frames ??= this.#frames(data, from, 'uid', null);
      online++;
      connections += this.#fanOut(uid, frames);
    }
    return { online, connections };
  }

  /** Pushes `data` to every logged-in connection, encoding it once per codec. */
  broadcast(data: Data, from: Uid | null = null): number {
    if (this.#registry.connectionCount === 0) return 0;
    const frames = this.#frames(data, from, 'broadcast', null);
    let written = 0;
    for (const conn of this.#registry.connections()) {
      if (conn.attached && this.#deliver(conn, frames, '')) written++;
    }
    return written;
  }

  /**
   * Pushes `data` to every connection of every member of `group` online here (the
   * registry's group index), encoding it once per codec. Returns how many members were
   * online here and how many connections were written to.
   */
  publish(group: Group, data: Data, from: Uid | null = null): PushResult {
    let online = 0;
    let connections = 0;
    const members = this.#registry.members(group);
    if (members.size === 0) return { online, connections };
    const frames = this.#frames(data, from, 'group', group);
    // Copy: a slow-consumer close during the loop must not disturb the iteration.
    for (const uid of [...members]) {
      if (!this.#registry.has(uid)) continue;
      online++;
      connections += this.#fanOut(uid, frames);
    }
    return { online, connections };
  }

  /**
   * Closes every connection of `uid` with 4501 (kicked) and `reason`, unbinding them at
   * once. Returns how many were closed.
   *
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT when `reason` is over 123 bytes
   * (it must fit a close frame); nothing is closed then.
   */
  kick(uid: Uid, reason = 'kicked'): number {
    if (!fitsCloseReason(reason)) {
      throw new UidpushError(ProgramErrorCode.InvalidArgument, `kick reason over ${String(MAX_CLOSE_REASON_BYTES)} bytes`);
    }
    return this.#registry.forEachOf(uid, (conn) => {
      this.#registry.unbind(conn);
      conn.close(CloseCode.Kicked, reason);
    });
  }

  /**
   * Writes a ready frame to one connection under the send-buffer cap. Returns whether it
   * was written. The transport uses it for direct replies so they obey the same cap.
   */
  write(conn: C, frame: Buffer): boolean {
    if (conn.bufferedBytes + frame.length > this.#maxBufferedBytes) {
      this.#slowConsumer(conn);
      return false;
    }
    // The first write of a turn goes out at once (one syscall, as without coalescing);
    // a second one corks the connection, and the rest of the turn's frames join it.
    // (-turn: corked in this turn already.)
    const turn = this.#turn;
    const last = conn.writeTurn;
    if (last === turn) {
      if (conn.cork !== undefined) {
        conn.writeTurn = -turn;
        conn.cork();
        this.#corked.push(conn);
      }
    } else if (last !== -turn) {
      conn.writeTurn = turn;
      if (!this.#turnEnding) {
        this.#turnEnding = true;
        queueMicrotask(this.#endTurn);
      }
    }
    if (!conn.writeFrame(frame)) return false;
    this.#stats.framesWritten++;
    this.#stats.bytesWritten += frame.length;
    return true;
  }

  /**
   * Pushes a retained push to every connection of `uid`: JSON frames carry its offset and
   * epoch, and a connection that is replaying holds it. Returns the connections written to.
   *
   * @param dataJson - the data's JSON text, if the caller has it (a local push serialised it for the inbox).
   */
  sendRetained(uid: Uid, data: Data, from: Uid | null, retained: RetainedPart, dataJson?: string): number {
    if (!this.#registry.has(uid)) return 0;
    return this.#fanOut(uid, new PushFrames(data, from, 'uid', uid, this.#countEncode, retained, dataJson));
  }

  /** Writes one replayed inbox entry to `conn` (under the send-buffer cap); moves its inbox position. */
  writeEntry(conn: C, uid: Uid, entry: InboxEntry, epoch: string): boolean {
    this.#stats.framesEncoded++;
    const frame = encodeTextFrame(messageFrame('uid', entry.from, uid, entry.data, { offset: entry.offset, epoch, key: entry.key }));
    if (!this.write(conn, frame)) return false;
    const box = conn.inbox;
    if (box !== undefined && entry.offset > box.last) box.last = entry.offset;
    return true;
  }

  /** Tells `conn` it was resynchronised in band (a `resync` frame). */
  writeResync(conn: C, reason: 'epoch_changed' | 'expired', epoch: string, offset: number): boolean {
    return this.write(conn, encodeTextFrame(resyncFrame(reason, epoch, offset)));
  }

  /**
   * Ends a replay: writes what was held, in order, each retained push once. Stops at a
   * retained push that does not follow (a gap, another epoch), keeping it and the rest held:
   * the node resyncs from there. `live` when everything was written.
   */
  release(conn: C): Released {
    const box = conn.inbox;
    const held = box?.held;
    if (box === undefined || held === undefined) return 'live';
    let i = 0;
    for (; i < held.length; i++) {
      const item = held[i] as HeldFrame;
      if (item.offset !== 0) {
        if (item.epoch === box.epoch && item.offset <= box.last) continue;
        if (item.epoch !== box.epoch || item.offset !== box.last + 1) break;
        box.last = item.offset;
      }
      if (!this.write(conn, item.frame)) {
        // Closed by the slow-consumer policy, or gone: nothing more to write.
        box.held = undefined;
        box.heldBytes = 0;
        return 'live';
      }
    }
    if (i < held.length) {
      box.held = held.slice(i);
      box.heldBytes = box.held.reduce((n, item) => n + item.frame.length, 0);
      return 'gap';
    }
    box.held = undefined;
    box.heldBytes = 0;
    return 'live';
  }

  #frames(data: Data, from: Uid | null, scope: Scope, to: string | null): PushFrames {
    return new PushFrames(data, from, scope, to, this.#countEncode);
  }

  /**
   * Writes one push to one connection: directly, or through its inbox position (held
   * while it replays; a retained push it had already is skipped; one that skips ahead is
   * held and the node told, to resync).
   */
  #deliver(conn: C, frames: PushFrames, uid: Uid): boolean {
    const box = conn.inbox;
    const frame = frames.frameFor(conn.codec, uid);
    if (box === undefined) return this.write(conn, frame);
    const retained = frames.retained;
    if (box.held !== undefined) return this.#hold(conn, box, frame, retained);
    if (retained === undefined) return this.write(conn, frame);
    if (retained.epoch === box.epoch) {
      if (retained.offset <= box.last) return false;
      if (retained.offset === box.last + 1) {
        if (!this.write(conn, frame)) return false;
        box.last = retained.offset;
        return true;
      }
    }
    box.held = [];
    const held = this.#hold(conn, box, frame, retained);
    // Even when dropped (the `drop` policy): the resync reads it back from the inbox.
    this.onGap?.(conn);
    return held;
  }

  /** Holds a push for a replaying connection; past the send-buffer cap, the slow-consumer policy applies. */
  #hold(conn: C, box: ConnectionInbox, frame: Buffer, retained: RetainedPart | undefined): boolean {
    if (box.heldBytes + frame.length > this.#maxBufferedBytes) {
      this.#slowConsumer(conn);
      return false;
    }
    box.held?.push({ frame, offset: retained?.offset ?? 0, epoch: retained?.epoch ?? '' });
    box.heldBytes += frame.length;
    return true;
  }

  #fanOut(uid: Uid, frames: PushFrames): number {
    const outer = this.#pending;
    const outerUid = this.#pendingUid;
    const outerWritten = this.#written;
    this.#pending = frames;
    this.#pendingUid = uid;
    this.#written = 0;
    this.#registry.forEachOf(uid, this.#writePending);
    const written = this.#written;
    this.#pending = outer;
    this.#pendingUid = outerUid;
    this.#written = outerWritten;
    return written;
  }

  #slowConsumer(conn: C): void {
    this.#stats.framesDropped++;
    let uid: Uid | undefined;
    if (this.#policy === 'close') {
      uid = this.#registry.unbind(conn);
      this.#stats.slowConsumersClosed++;
      conn.close(CloseCode.SlowConsumer, 'slow consumer: send buffer full');
    } else {
      uid = this.#registry.uidOf(conn);
    }
    this.#onSlowConsumer?.(conn, uid);
  }
}
