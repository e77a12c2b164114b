import { describe, expect, it } from 'vitest';
import { canBroadcast, canJoin, canPublish, canSend, RIGHTS, type Grants, type Right } from '../../src/auth/rights.js';

const grants = (rights: Right[], groups: string[] | 'any'): Grants => ({
  rights: new Set(rights),
  groups: groups === 'any' ? 'any' : new Set(groups),
});

describe('rights', () => {
  it('grants send and broadcast by their rights alone', () => {
    expect(canSend(grants(['send'], []))).toBe(true);
    expect(canSend(grants(['broadcast', 'publish', 'join'], 'any'))).toBe(false);
    expect(canBroadcast(grants(['broadcast'], []))).toBe(true);
    expect(canBroadcast(grants(['send', 'publish', 'join'], 'any'))).toBe(false);
  });

  it('grants publish with the right and the group among its groups', () => {
    const g = grants(['publish'], ['room']);
    expect(canPublish(g, 'room')).toBe(true);
    expect(canPublish(g, 'other')).toBe(false);
    expect(canPublish(grants([], ['room']), 'room')).toBe(false);
  });

  it('grants publish to any group with the right when auth is off', () => {
    expect(canPublish(grants(['publish'], 'any'), 'whatever')).toBe(true);
    expect(canPublish(grants(['send'], 'any'), 'whatever')).toBe(false);
  });

  it('grants join to exactly the groups a token lists, whatever its rights', () => {
    const g = grants([], ['room']);
    expect(canJoin(g, 'room')).toBe(true);
    expect(canJoin(g, 'other')).toBe(false);
    expect(canJoin(grants(['join'], ['room']), 'other')).toBe(false);
  });

  it('grants join to any group with the join right when auth is off', () => {
    expect(canJoin(grants(['join'], 'any'), 'x')).toBe(true);
    expect(canJoin(grants(['send', 'publish', 'broadcast'], 'any'), 'x')).toBe(false);
  });

  it('lists the four rights', () => {
    expect([...RIGHTS]).toEqual(['send', 'broadcast', 'publish', 'join']);
  });
});
