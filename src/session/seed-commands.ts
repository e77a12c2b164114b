import { canBroadcast, canSend } from '../auth/rights.js';
import { ErrorCode } from '../core/errors.js';
import { parseCommand } from '../protocol/seed-text.js';
import type { SessionConnection } from './connection.js';
import type { SessionContext } from './context.js';
import type { Login } from './login.js';

/**
 * The seed text protocol: the first message logs in (a uid, or a token when auth is on);
 * then `<uid>:<message>` pushes to a uid and `all:<message>` broadcasts. No
 * acknowledgements: errors only.
 */
export class SeedCommands<C extends SessionConnection> {
  readonly #ctx: SessionContext<C>;
  readonly #login: Login<C>;

  constructor(ctx: SessionContext<C>, login: Login<C>) {
    this.#ctx = ctx;
    this.#login = login;
  }

  /** Handles one text message (valid UTF-8: the transport refuses invalid text frames). */
  handle(conn: C, data: Buffer): void {
    const ctx = this.#ctx;
    const from = ctx.node.uidOf(conn);
    const grants = conn.grants;
    if (from === undefined || grants === undefined) {
      const text = data.toString('utf8');
      if (ctx.verifier !== undefined) this.#login.withToken(conn, text, undefined);
      else this.#login.asUid(conn, text, undefined);
      return;
    }
    const command = parseCommand(data, ctx.options.maxUidLength);
    switch (command.kind) {
      case 'error':
        ctx.error(conn, command.code, command.text);
        return;
      case 'push': {
        if (!canSend(grants)) {
          ctx.error(conn, ErrorCode.Forbidden, 'no right to send to a uid');
          return;
        }
        // No acknowledgement in the seed protocol: never pay for a cluster-wide answer.
        ctx.routed(conn, undefined, ctx.node.sendToUid(command.uid, command.message, from, false), (r) => {
          ctx.events.message(conn, from, 'uid', command.uid, command.message, r.connections);
        });
        return;
      }
      case 'broadcast': {
        if (!canBroadcast(grants)) {
          ctx.error(conn, ErrorCode.Forbidden, 'no right to broadcast');
          return;
        }
        ctx.routed(conn, undefined, ctx.node.broadcast(command.message, from, false), (r) => {
          ctx.events.message(conn, from, 'broadcast', undefined, command.message, r.connections);
        });
        return;
      }
    }
  }
}
