import { describe, expect, it } from 'vitest';
import { GroupIndex } from '../../src/registry/groups.js';

describe('GroupIndex', () => {
  it('indexes membership both ways', () => {
    const index = new GroupIndex();
    expect(index.add('g1', 'a')).toBe(true);
    expect(index.add('g1', 'b')).toBe(true);
    expect(index.add('g2', 'a')).toBe(true);
    expect([...index.members('g1')].sort()).toEqual(['a', 'b']);
    expect([...index.groupsOf('a')].sort()).toEqual(['g1', 'g2']);
    expect(index.has('g1', 'b')).toBe(true);
    expect(index.has('g2', 'b')).toBe(false);
    expect(index.size).toBe(2);
  });

  it('reports a second add of the same member as no change', () => {
    const index = new GroupIndex();
    index.add('g', 'a');
    expect(index.add('g', 'a')).toBe(false);
    expect(index.members('g').size).toBe(1);
    expect(index.groupsOf('a').size).toBe(1);
  });

  it('reports removing a non-member as no change', () => {
    const index = new GroupIndex();
    expect(index.remove('g', 'a')).toBe(false);
    index.add('g', 'a');
    expect(index.remove('g', 'b')).toBe(false);
    expect(index.remove('other', 'a')).toBe(false);
    expect(index.has('g', 'a')).toBe(true);
  });

  it('leaves nothing behind when the last member leaves', () => {
    const index = new GroupIndex();
    index.add('g', 'a');
    index.add('g', 'b');
    index.remove('g', 'a');
    expect(index.size).toBe(1);
    expect(index.groupsOf('a').size).toBe(0);
    index.remove('g', 'b');
    expect(index.size).toBe(0);
    expect(index.members('g').size).toBe(0);
    expect(index.groupsOf('b').size).toBe(0);
  });

  it('answers empty sets for unknown groups and uids', () => {
    const index = new GroupIndex();
    expect(index.members('nope').size).toBe(0);
    expect(index.groupsOf('nobody').size).toBe(0);
  });

  it('allows a group named like the broadcast uid', () => {
    const index = new GroupIndex();
    expect(index.add('all', 'a')).toBe(true);
    expect(index.has('all', 'a')).toBe(true);
  });
});
