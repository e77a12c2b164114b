import { describe, expect, it } from 'vitest';
import { Registry } from '../../src/registry/registry.js';

const conn = (name: string) => ({ name });

describe('Registry', () => {
  it('binds a connection to a uid and reports the first connection', () => {
    const r = new Registry<{ name: string }>();
    const a = conn('a');
    expect(r.bind(a, 'alice')).toBe(true);
    expect(r.uidOf(a)).toBe('alice');
    expect(r.has('alice')).toBe(true);
    expect(r.countOf('alice')).toBe(1);
  });

  it('holds many connections per uid', () => {
    const r = new Registry<{ name: string }>();
    const [a, b, c] = [conn('a'), conn('b'), conn('c')];
    r.bind(a, 'alice');
    expect(r.bind(b, 'alice')).toBe(false);
    r.bind(c, 'alice');
    expect(r.countOf('alice')).toBe(3);
    expect(r.uidCount).toBe(1);
    expect(r.connectionCount).toBe(3);
    const seen: string[] = [];
    expect(r.forEachOf('alice', (x) => seen.push(x.name))).toBe(3);
    expect(seen.sort()).toEqual(['a', 'b', 'c']);
  });

  it('keeps the other connections of the uid bound when one is removed (the seed bug)', () => {
    const r = new Registry<{ name: string }>();
    const [phone, laptop] = [conn('phone'), conn('laptop')];
    r.bind(phone, 'alice');
    r.bind(laptop, 'alice');
    expect(r.unbind(phone)).toBe('alice');
    expect(r.has('alice')).toBe(true);
    const seen: string[] = [];
    r.forEachOf('alice', (x) => seen.push(x.name));
    expect(seen).toEqual(['laptop']);
  });

  it('leaves nothing behind after the last connection is removed', () => {
    const r = new Registry<{ name: string }>();
    const conns = Array.from({ length: 5 }, (_, i) => conn(String(i)));
    for (const c of conns) r.bind(c, 'alice');
    for (const c of conns) r.unbind(c);
    expect(r.has('alice')).toBe(false);
    expect(r.uidCount).toBe(0);
    expect(r.connectionCount).toBe(0);
    expect([...r.uids()]).toEqual([]);
    expect(r.unbind(conns[0] as { name: string })).toBeUndefined();
  });

  it('moves a connection bound again to another uid', () => {
    const r = new Registry<{ name: string }>();
    const a = conn('a');
    r.bind(a, 'alice');
    expect(r.bind(a, 'alice')).toBe(false);
    r.bind(a, 'bob');
    expect(r.has('alice')).toBe(false);
    expect(r.uidOf(a)).toBe('bob');
    expect(r.connectionCount).toBe(1);
  });

  it('lets a callback unbind the connection it is given', () => {
    const r = new Registry<{ name: string }>();
    const [a, b] = [conn('a'), conn('b')];
    r.bind(a, 'alice');
    r.bind(b, 'alice');
    expect(r.forEachOf('alice', (x) => r.unbind(x))).toBe(2);
    expect(r.has('alice')).toBe(false);
  });

  it('iterates all connections while they are unbound', () => {
    const r = new Registry<{ name: string }>();
    const conns = Array.from({ length: 4 }, (_, i) => conn(String(i)));
    conns.forEach((c, i) => r.bind(c, `u${i % 2}`));
    let n = 0;
    for (const c of r.connections()) {
      r.unbind(c);
      n++;
    }
    expect(n).toBe(4);
    expect(r.connectionCount).toBe(0);
  });
});

describe('Registry: counts told to the listener', () => {
  it('tells each bind and unbind with the uid\'s new count, 0 when it goes offline', () => {
    const told: [string, number][] = [];
    const r = new Registry<{ name: string }>((uid, n) => told.push([uid, n]));
    const [a, b] = [conn('a'), conn('b')];
    r.bind(a, 'alice');
    r.bind(b, 'alice');
    r.unbind(a);
    r.unbind(b);
    expect(told).toEqual([
      ['alice', 1],
      ['alice', 2],
      ['alice', 1],
      ['alice', 0],
    ]);
  });

  it('tells nothing for a bind that changes nothing or an unbind of an unbound connection', () => {
    const told: [string, number][] = [];
    const r = new Registry<{ name: string }>((uid, n) => told.push([uid, n]));
    const a = conn('a');
    r.bind(a, 'alice');
    r.bind(a, 'alice');
    r.unbind(conn('stranger'));
    expect(told).toEqual([['alice', 1]]);
  });

  it('tells the old uid its loss and the new uid its gain when a connection moves', () => {
    const told: [string, number][] = [];
    const r = new Registry<{ name: string }>((uid, n) => told.push([uid, n]));
    const a = conn('a');
    r.bind(a, 'alice');
    r.bind(a, 'bob');
    expect(told).toEqual([
      ['alice', 1],
      ['alice', 0],
      ['bob', 1],
    ]);
  });
});

describe('Registry: order and counts', () => {
  it('lists uids in the order they came online, a returning uid last', () => {
    const r = new Registry<{ name: string }>();
    const [a, b, c] = [conn('a'), conn('b'), conn('c')];
    r.bind(a, 'u1');
    r.bind(b, 'u2');
    r.bind(c, 'u3');
    r.unbind(a);
    r.bind(a, 'u1');
    expect([...r.uids()]).toEqual(['u2', 'u3', 'u1']);
  });

  it('keeps a uid in its place while its connection count changes', () => {
    const r = new Registry<{ name: string }>();
    const [a, b, c] = [conn('a'), conn('b'), conn('c')];
    r.bind(a, 'u1');
    r.bind(b, 'u2');
    r.bind(c, 'u1');
    r.unbind(a);
    expect([...r.uids()]).toEqual(['u1', 'u2']);
    expect(r.countOf('u1')).toBe(1);
  });

  it('counts 100,000 connections over 50,000 uids and frees them all', () => {
    const r = new Registry<{ id: number }>();
    const conns = Array.from({ length: 100_000 }, (_, id) => ({ id }));
    for (const c of conns) r.bind(c, `u${String(c.id % 50_000)}`);
    expect(r.uidCount).toBe(50_000);
    expect(r.connectionCount).toBe(100_000);
    expect(r.countOf('u7')).toBe(2);
    for (const c of conns) r.unbind(c);
    expect(r.uidCount).toBe(0);
    expect(r.connectionCount).toBe(0);
  });

  it('calls nothing for an offline uid', () => {
    const r = new Registry<{ name: string }>();
    let calls = 0;
    expect(r.forEachOf('nobody', () => calls++)).toBe(0);
    expect(calls).toBe(0);
  });
});
