import { CloseCode, fitsCloseReason, MAX_CLOSE_REASON_BYTES } from '../core/close-codes.js';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import { joined, type GroupLimits } from '../core/limits.js';
import type { GroupInfo, PushResult, UidPage } from '../core/service.js';
import type { Data, Group, Uid } from '../core/types.js';
import type { Codec } from '../protocol/codec.js';
import type { Scope } from '../protocol/json-v1.js';
import { GroupIndex } from '../registry/groups.js';
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
  /**
   * Caps on joins. Unset: none, as for a cluster node's hub, which mirrors only its local
   * members while the broker's store enforces the caps for the whole cluster.
   */
  groupLimits?: GroupLimits | undefined;
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
  readonly #groupLimits: GroupLimits;
  readonly #stats: HubStats = {
    framesEncoded: 0,
    framesWritten: 0,
    bytesWritten: 0,
    framesDropped: 0,
    slowConsumersClosed: 0,
    offlineDrops: 0,
  };
  readonly #groups = new GroupIndex();
  readonly #countEncode = (): void => {
    this.#stats.framesEncoded++;
  };
  // One bound method, not a closure per call, for Registry.forEachOf.
  #pending: PushFrames | undefined;
  #pendingUid: Uid = '';
  #written = 0;
  readonly #writePending = (conn: C): void => {
    if (this.#pending === undefined) return;
    if (this.write(conn, this.#pending.frameFor(conn.codec, this.#pendingUid))) this.#written++;
  };

  constructor(registry: Registry<C>, options: HubOptions<C>) {
    this.#registry = registry;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#policy = options.slowConsumerPolicy;
    this.#onSlowConsumer = options.onSlowConsumer;
    this.#groupLimits = options.groupLimits ?? UNLIMITED;
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
      if (this.write(conn, frames.frameFor(conn.codec, ''))) written++;
    }
    return written;
  }

  /**
   * Pushes `data` to every connection of every member of `group`, encoding it once per
   * codec. Returns how many members were online and how many connections were written to.
   */
  publish(group: Group, data: Data, from: Uid | null = null): PushResult {
    let online = 0;
    let connections = 0;
    const members = this.#groups.members(group);
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
   * Adds `uid` to `group` (it need not be online). Returns false if it already was.
   *
   * @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED when `uid` is in `maxGroupsPerUid`
   *   groups or `group` has `maxMembersPerGroup` members; nothing is changed then.
   */
  join(group: Group, uid: Uid): boolean {
    return joined(this.#groups.join(group, uid, this.#groupLimits), group, uid, this.#groupLimits);
  }

  /** Removes `uid` from `group`. Returns false if it was not a member. */
  leave(group: Group, uid: Uid): boolean {
    return this.#groups.remove(group, uid);
  }

  /** Removes `uid` from every group it belongs to. Returns how many it left. */
  leaveAll(uid: Uid): number {
    const groups = [...this.#groups.groupsOf(uid)];
    for (const group of groups) this.#groups.remove(group, uid);
    return groups.length;
  }

  /** Whether `uid` is a member of `group`. */
  isMember(group: Group, uid: Uid): boolean {
    return this.#groups.has(group, uid);
  }

  /** The groups `uid` belongs to. */
  groupsOf(uid: Uid): Group[] {
    return [...this.#groups.groupsOf(uid)];
  }

  /** Members of `group`, how many are online, and their connections. */
  group(group: Group): GroupInfo {
    const members = this.#groups.members(group);
    let online = 0;
    let connections = 0;
    for (const uid of members) {
      const n = this.#registry.countOf(uid);
      if (n > 0) online++;
      connections += n;
    }
    return { group, members: members.size, online, connections };
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
   * Lists online uids a page at a time, in the order they came online. A uid that stays
   * online for the whole scan is returned exactly once while the uid the cursor names stays
   * online; if it went offline, the scan resumes at the same position, and may skip or
   * repeat a few uids.
   *
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT when the cursor was not made here.
   */
  uids(options: { cursor?: string | null | undefined; limit?: number | undefined } = {}): UidPage {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const { offset, after } = decodeCursor(options.cursor);
    let position = 0;
    let resumeFrom = offset;
    if (after !== undefined && this.#registry.has(after)) {
      // Find the named uid; everything after it is new to this scan.
      for (const uid of this.#registry.uids()) {
        position++;
        if (uid === after) break;
      }
      resumeFrom = position;
    }
    const page: Uid[] = [];
    position = 0;
    for (const uid of this.#registry.uids()) {
      if (position++ < resumeFrom) continue;
      page.push(uid);
      if (page.length === limit) break;
    }
    const last = page.at(-1);
    const more = last !== undefined && resumeFrom + page.length < this.#registry.uidCount;
    return {
      uids: page,
      nextCursor: more ? encodeCursor(resumeFrom + page.length, last) : null,
    };
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
    this.#pending = frames;
    this.#pendingUid = uid;
    this.#written = 0;
    this.#registry.forEachOf(uid, this.#writePending);
    this.#pending = undefined;
    return this.#written;
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

const UNLIMITED: GroupLimits = { maxGroupsPerUid: Infinity, maxMembersPerGroup: Infinity };

function encodeCursor(offset: number, after: Uid): string {
  return Buffer.from(JSON.stringify([offset, after])).toString('base64url');
}

function decodeCursor(cursor: string | null | undefined): { offset: number; after?: Uid } {
  if (cursor === undefined || cursor === null || cursor === '') return { offset: 0 };
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      Number.isSafeInteger(value[0]) &&
      (value[0] as number) >= 0 &&
      typeof value[1] === 'string'
    ) {
      return { offset: value[0] as number, after: value[1] };
    }
  } catch {
    // fall through to the error below
  }
  throw new UidpushError(ProgramErrorCode.InvalidArgument, 'invalid cursor');
}
