import { describe, expect, it } from 'vitest';
import { ExpiryQueue } from '../../src/transport/expiry.js';

interface Conn {
  name: string;
  expiresAt: number;
}
const conn = (name: string): Conn => ({ name, expiresAt: 0 });
const names = (conns: Conn[]): string[] => conns.map((c) => c.name).sort();

describe('ExpiryQueue', () => {
  it('hands out nothing before a connection is due', () => {
    const q = new ExpiryQueue<Conn>();
    const a = conn('a');
    q.set(a, 10_000);
    expect(q.due(9_999)).toEqual([]);
    expect(q.size).toBe(1);
    expect(a.expiresAt).toBe(10_000);
  });

  it('hands out a connection once it is due, once, and clears its expiry', () => {
    const q = new ExpiryQueue<Conn>();
    const a = conn('a');
    q.set(a, 10_000);
    expect(q.due(10_000)).toEqual([a]);
    expect(a.expiresAt).toBe(0);
    expect(q.size).toBe(0);
    expect(q.due(20_000)).toEqual([]);
  });

  it('never hands out a connection early, and at most a second late', () => {
    const q = new ExpiryQueue<Conn>();
    const a = conn('a');
    q.set(a, 10_001);
    expect(q.due(10_999)).toEqual([]);
    expect(q.due(11_000)).toEqual([a]);
  });

  it('hands out every connection whose time has come, overdue ones included', () => {
    const q = new ExpiryQueue<Conn>();
    const [a, b, c, d] = [conn('a'), conn('b'), conn('c'), conn('d')];
    q.set(a, 1_000);
    q.set(b, 2_500);
    q.set(c, 3_000);
    q.set(d, 60_000);
    expect(names(q.due(3_000))).toEqual(['a', 'b', 'c']);
    expect(q.size).toBe(1);
    expect(q.due(60_000)).toEqual([d]);
  });

  it('moves a connection whose token was refreshed', () => {
    const q = new ExpiryQueue<Conn>();
    const a = conn('a');
    q.set(a, 5_000);
    q.set(a, 50_000);
    expect(q.size).toBe(1);
    expect(q.due(10_000)).toEqual([]);
    expect(q.due(50_000)).toEqual([a]);
  });

  it('moves a connection to an earlier expiry', () => {
    const q = new ExpiryQueue<Conn>();
    const [a, b] = [conn('a'), conn('b')];
    q.set(a, 50_000);
    q.set(b, 90_000);
    expect(q.due(10_000)).toEqual([]);
    q.set(b, 5_000);
    expect(q.due(10_000)).toEqual([b]);
  });

  it('forgets a connection set to 0 or deleted', () => {
    const q = new ExpiryQueue<Conn>();
    const [a, b] = [conn('a'), conn('b')];
    q.set(a, 5_000);
    q.set(b, 5_000);
    q.set(a, 0);
    q.delete(b);
    q.delete(b);
    expect(q.size).toBe(0);
    expect(a.expiresAt).toBe(0);
    expect(q.due(100_000)).toEqual([]);
  });

  it('finds a connection added after a take that left the queue empty', () => {
    const q = new ExpiryQueue<Conn>();
    const [a, b] = [conn('a'), conn('b')];
    q.set(a, 1_000);
    expect(q.due(1_000)).toEqual([a]);
    q.set(b, 2_000);
    expect(q.due(2_000)).toEqual([b]);
  });
});
