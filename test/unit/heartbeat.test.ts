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

describe('Heartbeat: the wheel', () => {
  it('visits each connection once per interval, spreading them over the buckets', () => {
    vi.useFakeTimers();
    const visits = new Map<number, number[]>();
    const wheel = new Heartbeat<{ slot: number; n: number }>(
      1000,
      (conn, now) => visits.set(conn.n, [...(visits.get(conn.n) ?? []), now]),
      () => undefined,
    );
    const start = Date.now();
    for (let n = 0; n < 20; n++) wheel.add({ slot: 0, n });
    vi.advanceTimersByTime(3000);
    expect(visits.size).toBe(20);
    for (const times of visits.values()) {
      expect(times).toHaveLength(3);
      expect((times[1] ?? 0) - (times[0] ?? 0)).toBe(1000);
    }
    // Round robin: two connections per bucket, the first bucket visited 100 ms in.
    expect(visits.get(0)?.[0]).toBe(start + 100);
    expect(visits.get(10)?.[0]).toBe(start + 100);
    expect(visits.get(1)?.[0]).toBe(start + 200);
    wheel.stop();
  });

  it('no longer visits a removed connection', () => {
    vi.useFakeTimers();
    const visited: string[] = [];
    const wheel = new Heartbeat<{ slot: number; name: string }>(
      1000,
      (c) => visited.push(c.name),
      () => undefined,
    );
    const a = { slot: 0, name: 'a' };
    const b = { slot: 0, name: 'b' };
    wheel.add(a);
    wheel.add(b);
    expect(wheel.size).toBe(2);
    wheel.remove(a);
    expect(wheel.size).toBe(1);
    expect([...wheel.all()]).toEqual([b]);
    vi.advanceTimersByTime(1000);
    expect(visited).toEqual(['b']);
    wheel.stop();
  });

  it('lets a visit remove the connection it is given', () => {
    vi.useFakeTimers();
    const visited: number[] = [];
    const wheel = new Heartbeat<{ slot: number; n: number }>(
      1000,
      (c) => {
        visited.push(c.n);
        wheel.remove(c);
      },
      () => undefined,
      1,
    );
    for (let n = 0; n < 5; n++) wheel.add({ slot: 0, n });
    vi.advanceTimersByTime(1000);
    expect(visited).toEqual([0, 1, 2, 3, 4]);
    expect(wheel.size).toBe(0);
    wheel.stop();
  });

  it('stops ticking when stopped', () => {
    vi.useFakeTimers();
    let ticks = 0;
    const wheel = new Heartbeat<{ slot: number }>(
      1000,
      () => undefined,
      () => ticks++,
    );
    vi.advanceTimersByTime(300);
    wheel.stop();
    const before = ticks;
    vi.advanceTimersByTime(10_000);
    expect(ticks).toBe(before);
  });

  it('visits one bucket, not a backlog, after a late tick', () => {
    vi.useFakeTimers();
    const visited: number[] = [];
    const wheel = new Heartbeat<{ slot: number; n: number }>(
      1000,
      (c) => visited.push(c.n),
      () => undefined,
    );
    for (let n = 0; n < 10; n++) wheel.add({ slot: 0, n });
    // The clock jumps 5 s while no timer runs: a blocked event loop.
    vi.setSystemTime(Date.now() + 5000);
    vi.advanceTimersByTime(100);
    expect(visited).toEqual([0]);
    wheel.stop();
  });
});
