import type { Logger, Uid } from '../../core/types.js';
import type { RevocationStore, UidRevocation } from '../broker.js';
import type { RedisLike } from './client.js';
import type { RedisKeys } from './keys.js';

/** A stored `<before>:<until>`; undefined when absent or unreadable (then pruned). */
function parseRevocation(uid: Uid, text: string | null): UidRevocation | undefined {
  if (text === null) return undefined;
  const [before, until] = text.split(':').map(Number);
  if (before === undefined || until === undefined || !Number.isFinite(before) || !Number.isFinite(until)) return undefined;
  return { uid, before, until };
}

/** Token cut-offs in one Redis hash that lives as long as its longest cut-off. */
export class RedisRevocations implements RevocationStore {
  readonly #redis: RedisLike;
  readonly #key: RedisKeys;
  readonly #log: Logger;

  constructor(redis: RedisLike, key: RedisKeys, log: Logger) {
    this.#redis = redis;
    this.#key = key;
    this.#log = log;
  }

  async revoke({ uid, before, until }: UidRevocation): Promise<void> {
    const key = this.#key.revoked;
    const known = parseRevocation(uid, await this.#redis.hGet(key, uid));
    const value = `${Math.max(before, known?.before ?? 0)}:${Math.max(until, known?.until ?? 0)}`;
    const ttl = Math.max(1, until - Date.now());
    // The hash lives as long as its longest cut-off: NX arms a fresh key, GT only
    // ever lengthens it (a node with a shorter revokeTtl cannot cut others short).
    await Promise.all([this.#redis.hSet(key, { [uid]: value }), this.#redis.pExpire(key, ttl, 'NX'), this.#redis.pExpire(key, ttl, 'GT')]);
  }

  async revocations(): Promise<UidRevocation[]> {
    const now = Date.now();
    const all = await this.#redis.hGetAll(this.#key.revoked);
    const live: UidRevocation[] = [];
    const expired: string[] = [];
    for (const [uid, text] of Object.entries(all)) {
      const r = parseRevocation(uid, text);
      if (r !== undefined && r.until > now) live.push(r);
      else expired.push(uid);
    }
    if (expired.length > 0) {
      this.#redis.hDel(this.#key.revoked, expired).catch((err: unknown) => {
        this.#log.debug({ err }, 'redis: pruning expired token cut-offs failed');
      });
    }
    return live;
  }
}
