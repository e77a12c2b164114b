import { afterEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat, MAX_TICK_MS } from '../../src/transport/heartbeat.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('Heartbeat', () => {
  it('ticks every 250 ms for short deadlines while visiting one bucket per interval / 10', () => {
    vi.useFakeTimers();
    const ticks: number[] = [];
    const visits: number[] = [];
    const wheel = new Heartbeat<{ slot: number; n: number }>(
      25_000,
      (conn) => visits.push(conn.n),
      (now) => ticks.push(now),
    );
    for (let n = 0; n < 10; n++) wheel.add({ slot: 0, n });
    vi.advanceTimersByTime(MAX_TICK_MS);
    expect(ticks).toHaveLength(1);
    expect(visits).toEqual([]);
    vi.advanceTimersByTime(2500 - MAX_TICK_MS);
    expect(ticks).toHaveLength(10);
    expect(visits).toEqual([0]);
    vi.advanceTimersByTime(25_000 - 2500);
    expect(ticks).toHaveLength(100);
    expect(visits.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    wheel.stop();
  });

  it('ticks at interval / 10 when that is shorter than 250 ms', () => {
    vi.useFakeTimers();
    let ticks = 0;
    const visited: number[] = [];
    const wheel = new Heartbeat<{ slot: number }>(
      1000,
      () => visited.push(1),
      () => ticks++,
    );
    wheel.add({ slot: 0 });
    vi.advanceTimersByTime(1000);
    expect(ticks).toBe(10);
    expect(visited).toHaveLength(1);
    wheel.stop();
  });
});
