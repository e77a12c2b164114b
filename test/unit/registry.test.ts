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
