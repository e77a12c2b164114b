import { CloseCode, fitsCloseReason, MAX_CLOSE_REASON_BYTES } from '../core/close-codes.js';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import type { PushResult } from '../core/service.js';
import type { Data, Group, Uid } from '../core/types.js';
import type { Codec } from '../protocol/codec.js';
import type { Scope } from '../protocol/json-v1.js';
import type { Registry } from '../registry/registry.js';
import { PushFrames } from './push-frames.js';

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
    if (this.write(conn, this.#pending.frameFor(conn.codec, this.#pendingUid))) this.#written++;
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
      if (conn.attached && this.write(conn, frames.frameFor(conn.codec, ''))) written++;
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
    if (!conn.writeFrame(frame)) return false;
    this.#stats.framesWritten++;
    this.#stats.bytesWritten += frame.length;
    return true;
  }

  #frames(data: Data, from: Uid | null, scope: Scope, to: string | null): PushFrames {
    return new PushFrames(data, from, scope, to, this.#countEncode);
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
