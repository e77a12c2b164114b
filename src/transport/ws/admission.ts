import type { UpgradeRefusal } from '../../core/service.js';

/** The limits on handshakes, checked before ws reads a byte. */
export interface AdmissionLimits {
  maxPendingConnections: number;
  maxConnectionsPerIp: number;
  maxHandshakesPerIp: number;
}

/**
 * Who may start a handshake: the pending cap (503) and the per-IP open and rate limits
 * (429). Fixed one-second windows for the rate, so its map holds one second of addresses.
 */
export class Admission {
  readonly #o: AdmissionLimits;
  /** Open connections (and upgrades in progress) per IP, when that limit is on; no zeros. */
  readonly #perIp = new Map<string, number>();
  /** Handshakes per IP in the current one-second window, when that limit is on. */
  readonly #handshakesPerIp = new Map<string, number>();
  #windowEnds = 0;
  readonly refused: Record<UpgradeRefusal, number> = { pending: 0, per_ip: 0, handshake_rate: 0 };

  constructor(limits: AdmissionLimits) {
    this.#o = limits;
  }

  /**
   * Whether a handshake from `ip` may go on, with `pending` connections not logged in yet;
   * if so, it is counted. Refused: the status and text to answer with. `ip` is read only
   * when {@link usesIp}.
   */
  admit(ip: string, pending: number): { status: 429 | 503; text: string } | undefined {
    const o = this.#o;
    if (o.maxHandshakesPerIp > 0) {
      const started = (this.#handshakesPerIp.get(ip) ?? 0) + 1;
      this.#handshakesPerIp.set(ip, started);
      if (started > o.maxHandshakesPerIp) {
        this.refused.handshake_rate++;
        return { status: 429, text: `more than ${o.maxHandshakesPerIp} handshakes/s from this address` };
      }
    }
    if (pending >= o.maxPendingConnections) {
      this.refused.pending++;
      return { status: 503, text: `too many connections waiting to log in (${o.maxPendingConnections})` };
    }
    if (o.maxConnectionsPerIp > 0) {
      const open = this.#perIp.get(ip) ?? 0;
      if (open >= o.maxConnectionsPerIp) {
        this.refused.per_ip++;
        return { status: 429, text: `more than ${o.maxConnectionsPerIp} connections from this address` };
      }
      this.#perIp.set(ip, open + 1);
    }
    return undefined;
  }

  /** Whether either per-IP limit is on, so {@link admit} needs the peer's address. */
  get usesIp(): boolean {
    return this.#o.maxConnectionsPerIp > 0 || this.#o.maxHandshakesPerIp > 0;
  }

  /** Whether open connections are counted per IP (so a connection must give its slot back). */
  get countsIp(): boolean {
    return this.#o.maxConnectionsPerIp > 0;
  }

  /** Gives back the per-IP slot taken by {@link admit}. */
  release(ip: string): void {
    if (this.#o.maxConnectionsPerIp === 0) return;
    const open = (this.#perIp.get(ip) ?? 0) - 1;
    // Deleted at zero, so the map holds only addresses with open connections.
    if (open > 0) this.#perIp.set(ip, open);
    else this.#perIp.delete(ip);
  }

  /** Called every tick: starts a new rate window when the current one is over. */
  tick(now: number): void {
    if (now < this.#windowEnds) return;
    this.#handshakesPerIp.clear();
    this.#windowEnds = now + 1000;
  }
}
