import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks a `Bearer` Authorization header against the API key in constant time: both sides
 * are hashed first, so neither the key's length nor its content leaks through timing.
 */
export function makeKeyCheck(apiKey: string): (header: string | undefined) => boolean {
  const expected = createHash('sha256').update(apiKey).digest();
  return (header) => {
    if (header === undefined) return false;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const given = match?.[1];
    if (given === undefined) return false;
    return timingSafeEqual(createHash('sha256').update(given).digest(), expected);
  };
}

// One definition for the listen checks, the API's Host check and the handshake's Origin.
export { isLoopback } from '../core/origins.js';
