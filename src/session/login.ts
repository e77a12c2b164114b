import { TokenError, type Identity } from '../auth/jwt.js';
import type { Grants, Right } from '../auth/rights.js';
import { CloseCode } from '../core/close-codes.js';
import { ErrorCode } from '../core/errors.js';
import type { InboxRefusal, InboxWelcome, ResumeRequest } from '../core/inbox.js';
import { checkUid } from '../core/names.js';
import type { Uid } from '../core/types.js';
import { Codec, codecOf } from '../protocol/codec.js';
import type { RequestId } from '../protocol/json-v1.js';
import type { SessionConnection } from './connection.js';
import type { SessionContext } from './context.js';
import { MAX_HELD } from './limits.js';

/**
 * Logging in, for both protocols: by uid (auth off), by token (verified while the
 * connection's messages are held, then replayed in order), a token refresh, and the wait
 * for the node to attach the uid (messages held the same way). The login reply is sent
 * once the node has attached the connection, so no push sent after it can miss it.
 */
export class Login<C extends SessionConnection> {
  readonly #ctx: SessionContext<C>;
  /** Handles one message; called for each held message when the wait ends. */
  readonly #replay: (conn: C, data: Buffer) => void;
  /** Grants of every connection when auth is off: one shared object. */
  readonly #openGrants: Grants;
  readonly #tokenDefaultRights: ReadonlySet<Right>;

  constructor(ctx: SessionContext<C>, replay: (conn: C, data: Buffer) => void) {
    this.#ctx = ctx;
    this.#replay = replay;
    this.#openGrants = { rights: new Set(ctx.options.clientRights), groups: 'any' };
    this.#tokenDefaultRights = new Set(ctx.options.clientRights);
  }

  /**
   * Holds `data` if the session is waiting (a token, an attach): true when it was held, or
   * dropped with `rate_limited` past {@link MAX_HELD}.
   */
  hold(conn: C, data: Buffer): boolean {
    const held = conn.held;
    if (held === undefined) return false;
    if (held.length < MAX_HELD) held.push(data);
    else this.#ctx.error(conn, ErrorCode.RateLimited, 'too many messages while authenticating; message dropped');
    return true;
  }

  /** Logs in as `uid` (auth off): the seed's first message, or a v1 `auth` frame's `uid`. */
  asUid(conn: C, uid: string, id: RequestId, resume?: ResumeRequest): void {
    const refusal = checkUid(uid, this.#ctx.options.maxUidLength);
    if (refusal !== undefined) {
      this.#ctx.log.debug({ conn: conn.id, code: ErrorCode.BadRequest, reason: refusal }, 'login refused');
      this.#ctx.error(conn, ErrorCode.BadRequest, refusal, id);
      return;
    }
    this.#login(conn, uid, this.#openGrants, 0, id, resume);
  }

  /**
   * Verifies a token from the first seed message or an auth frame; holds messages
   * meanwhile. Before login it logs in; after, it refreshes the grants and expiry.
   */
  withToken(conn: C, token: string, id: RequestId, resume?: ResumeRequest): void {
    const verifier = this.#ctx.verifier;
    if (verifier === undefined) return;
    conn.held ??= [];
    conn.pause();
    verifier.verify(token).then(
      (identity) => {
        if (!conn.isOpen) return;
        // A promise callback: a throw here would be an unhandled rejection (process exit).
        try {
          const current = this.#ctx.node.uidOf(conn);
          if (current === undefined) {
            // The login replays the held messages once the node has attached the uid.
            this.withIdentity(conn, identity, id, resume);
            return;
          }
          this.#refresh(conn, current, identity, id);
        } catch (err) {
          this.#ctx.internal(conn, err, id, 'logging in');
        }
        this.release(conn);
      },
      (err: unknown) => {
        conn.held = undefined;
        if (!conn.isOpen) return;
        // Read again, so the client's answer to our close frame ends the connection at once.
        conn.resume();
        this.refuseToken(conn, err instanceof TokenError ? err : new TokenError('token refused'), id);
      },
    );
  }

  /** Logs in with a verified identity (a handshake token, or {@link withToken}'s). */
  withIdentity(conn: C, identity: Identity, id: RequestId, resume?: ResumeRequest): void {
    const grants: Grants = { rights: identity.rights ?? this.#tokenDefaultRights, groups: identity.groups ?? new Set() };
    this.#login(conn, identity.uid, grants, identity.expiresAt ?? 0, id, resume);
  }

  /** Refuses a token: `unauthorized`, then a 4502 close. The reason is logged, never the token. */
  refuseToken(conn: C, err: TokenError, id: RequestId): void {
    this.#ctx.log.debug({ conn: conn.id, code: ErrorCode.Unauthorized, reason: err.message }, 'login refused');
    this.#ctx.error(conn, ErrorCode.Unauthorized, err.message, id);
    conn.close(CloseCode.Unauthorized, err.message.slice(0, 120));
  }

  /**
   * Ends a wait: replays the held messages in order, then reads again. A replayed message
   * that starts another wait (a token refresh) holds the rest behind it.
   */
  release(conn: C): void {
    const held = conn.held ?? [];
    conn.held = undefined;
    for (let i = 0; i < held.length; i++) {
      if (!conn.isOpen) return;
      // The replay before may have started another wait.
      const waiting = heldOf(conn);
      if (waiting !== undefined) {
        waiting.push(...held.slice(i));
        return;
      }
      try {
        this.#replay(conn, held[i] as Buffer);
      } catch (err) {
        this.#ctx.internal(conn, err, undefined, 'handling a client message');
      }
    }
    if (conn.isOpen && heldOf(conn) === undefined) conn.resume();
  }

  #refresh(conn: C, current: Uid, identity: Identity, id: RequestId): void {
    if (identity.uid !== current) {
      this.#ctx.error(conn, ErrorCode.Forbidden, `token is for uid ${identity.uid}, this connection is ${current}`, id);
      return;
    }
    conn.grants = { rights: identity.rights ?? this.#tokenDefaultRights, groups: identity.groups ?? new Set() };
    this.#ctx.host.expireAt(conn, identity.expiresAt ?? 0);
    this.#ctx.ack(conn, id, { refreshed: true, expiresAt: identity.expiresAt ?? null });
  }

  /**
   * The inbox could not be opened for the login: the client is told (`bad_request` for a
   * bad `since`, `unavailable` when the store did not answer) and the connection closed,
   * 1008 or 1013, so it reconnects and asks again. The node has detached it.
   */
  #refuseInbox(conn: C, refusal: InboxWelcome | InboxRefusal, id: RequestId): void {
    if (!('refused' in refusal)) return;
    conn.uid = undefined;
    conn.grants = undefined;
    this.#ctx.error(conn, refusal.unavailable ? ErrorCode.Unavailable : ErrorCode.BadRequest, `auth: ${refusal.refused}`, id);
    conn.close(
      refusal.unavailable ? CloseCode.TryAgainLater : CloseCode.PolicyViolation,
      refusal.unavailable ? 'inbox unavailable' : 'bad since',
    );
  }

  #login(conn: C, uid: Uid, grants: Grants, expiresAt: number, id: RequestId, resume: ResumeRequest | undefined): void {
    const ctx = this.#ctx;
    // Every v1 connection has a place in the inbox (a handshake token's too: a device made
    // up for it); seed connections get live pushes only, as the seed did.
    const inboxResume = conn.codec === Codec.JsonV1 ? (resume ?? NO_RESUME) : undefined;
    ctx.host.loggedIn(conn, ctx.options.maxMessageSize);
    conn.uid = uid;
    conn.grants = grants;
    ctx.host.expireAt(conn, expiresAt);
    // Held already when a token was verified (and the connection paused); held from now
    // on otherwise, until the node has attached the uid: a message handled before would
    // act for a connection the node does not know yet.
    const verified = conn.held !== undefined;
    conn.held ??= [];
    const call = { running: true, attached: false };
    try {
      ctx.node.attach(
        conn,
        uid,
        (attached, inbox) => {
          if (call.running) call.attached = true;
          if (inbox !== undefined && 'refused' in inbox) {
            this.#refuseInbox(attached, inbox, id);
            if (!call.running) this.release(attached);
            return;
          }
          try {
            attached.sendText(codecOf(attached.codec).loginReply(uid, attached.id, id, inbox));
            ctx.events.login(attached, uid);
          } catch (err) {
            ctx.internal(attached, err, id, 'logging in');
          }
          // Later (a cluster subscribing first): the connection was paused at the call.
          if (!call.running) this.release(attached);
        },
        inboxResume,
      );
    } finally {
      call.running = false;
      // Attached at once, without a token: nothing can have been held, nothing paused.
      if (call.attached && !verified) conn.held = undefined;
      else if (call.attached) this.release(conn);
      else if (conn.isOpen) conn.pause();
    }
  }
}

/** The resume of a v1 connection that asked for nothing: a new device, from the top. */
const NO_RESUME: ResumeRequest = {};

/** A connection's held messages, read through a call so that a check made before a replay is not trusted after it. */
function heldOf(conn: SessionConnection): Buffer[] | undefined {
  return conn.held;
}
