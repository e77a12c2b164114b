import type { TokenRevocation } from '../core/service.js';
import type { Uid } from '../core/types.js';

/**
 * The token cut-offs this node knows: after a kick with `revokeTokens`, a uid's tokens
 * issued before the kick are refused until the cut-off expires. Held in memory on every
 * node (a cluster loads them at start and learns new ones from the cluster's broadcast),
 * so a login pays one map lookup, never a round trip to the broker. There are few: one
 * per uid kicked with revocation within `revokeTtl`.
 */
export class TokenCutoffs {
  readonly #byUid = new Map<Uid, TokenRevocation>();

  /** Cut-offs held, expired ones not yet pruned included. */
  get size(): number {
    return this.#byUid.size;
  }

  /**
   * Records a cut-off. Two for one uid merge into the later of each bound, so the order
   * they arrive in (a broadcast, a reload from the store) does not matter.
   */
  add(uid: Uid, revocation: TokenRevocation): void {
    const known = this.#byUid.get(uid);
    this.#byUid.set(
      uid,
      known === undefined
        ? { before: revocation.before, until: revocation.until }
        : { before: Math.max(known.before, revocation.before), until: Math.max(known.until, revocation.until) },
    );
  }

  /**
   * Why a token for `uid` with `iat` (seconds, as in the claim) is refused now, or
   * undefined when no cut-off applies. A token without `iat` cannot show it is newer than
   * the kick, so it is refused while a cut-off is in force.
   */
  refusal(uid: Uid, iat: unknown, now = Date.now()): string | undefined {
    if (this.#byUid.size === 0) return undefined;
    const cutoff = this.#byUid.get(uid);
    if (cutoff === undefined) return undefined;
    if (cutoff.until <= now) {
      this.#byUid.delete(uid);
      return undefined;
    }
    if (typeof iat !== 'number') return 'token revoked: it has no iat and its uid was kicked';
    return iat * 1000 < cutoff.before ? 'token revoked: issued before its uid was kicked' : undefined;
  }

  /** Drops the cut-offs that have expired. */
  prune(now = Date.now()): void {
    for (const [uid, cutoff] of this.#byUid) if (cutoff.until <= now) this.#byUid.delete(uid);
  }
}
