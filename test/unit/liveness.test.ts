import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/types.js';
import type { Connection } from '../../src/transport/connection.js';
import { MAX_TICK_MS } from '../../src/transport/heartbeat.js';
import { heartbeatSlots, Liveness } from '../../src/transport/liveness.js';

afterEach(() => {
  vi.useRealTimers();
});

/** What liveness touches of a connection: its wheel slot, when it was last heard, the ping write. */
function fakeConnections(n: number, pings: number[]): Connection[] {
  return Array.from({ length: n }, (_, id) => {
    const conn = {
      id,
      uid: `u${String(id)}`,
      slot: 0,
      lastSeen: Date.now(),
      closedBy: undefined,
      writeFrame: () => {
        pings.push(Date.now());
        // An answering peer: its pong counts as traffic.
        conn.lastSeen = Date.now();
        return true;
      },
      terminate: () => undefined,
    };
    return conn as unknown as Connection;
  });
}

describe('Liveness: pings spread over the interval', () => {
  it('gives the wheel one bucket per 250 ms tick for the default 25 s interval, and at least ten', () => {
    expect(heartbeatSlots(25_000)).toBe(100);
    expect(heartbeatSlots(1000)).toBe(10);
    expect(heartbeatSlots(10)).toBe(10);
    expect(heartbeatSlots(3_600_000)).toBe(1000);
  });

  it('pings 19,000 connections once each per 25 s interval, never more than 1% of them in one tick', () => {
    vi.useFakeTimers();
    const pings: number[] = [];
    const liveness = new Liveness(
      { heartbeatInterval: 25_000, idleTimeout: 60_000, loginTimeout: 10_000, closeGrace: 1000 },
      silentLogger,
      () => undefined,
      () => undefined,
    );
    const start = Date.now();
    for (const conn of fakeConnections(19_000, pings)) {
      liveness.add(conn);
      liveness.loggedIn(conn);
    }
    vi.advanceTimersByTime(25_000);
    expect(pings).toHaveLength(19_000);
    const perTick = new Map<number, number>();
    for (const at of pings) {
      const tick = Math.floor((at - start) / MAX_TICK_MS);
      perTick.set(tick, (perTick.get(tick) ?? 0) + 1);
    }
    expect(Math.max(...perTick.values())).toBeLessThanOrEqual(190);
    expect(perTick.size).toBe(100);
    liveness.stop();
  });
});
