import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope, encodePushes, type Envelope } from '../../src/broker/envelope.js';

describe('cluster envelopes', () => {
  it('round-trips every type', () => {
    const all: Envelope[] = [
      { t: 'push', uid: 'u', data: { a: [1, 'x'] }, from: 's' },
      { t: 'publish', group: 'g', data: 'hi', from: null },
      { t: 'broadcast', data: 0, from: null },
      { t: 'kick', uid: 'u', reason: 'bye' },
      { t: 'revoke', uid: 'u', before: 1_764_600_000_000, until: 1_764_686_400_000 },
      { t: 'join', group: 'g', uid: 'u' },
      { t: 'leave', group: 'g', uid: 'u' },
    ];
    for (const env of all) {
      const decoded = decodeEnvelope(encodeEnvelope('n1', env));
      expect(decoded).toMatchObject({ ok: true, node: 'n1', env });
    }
  });

  it('encodes the pushes of one multi-uid push as encodeEnvelope would, each uid its own', () => {
    const data = { text: 'hé "quoted"', n: [1, 2] };
    const uids = ['a', 'b"c', '\u{1f600}'];
    const pushes = encodePushes('n1', uids, data, 'sender');
    expect(pushes.map(([uid]) => uid)).toEqual(uids);
    for (const [uid, envelope] of pushes) {
      expect(JSON.parse(envelope)).toEqual(JSON.parse(encodeEnvelope('n1', { t: 'push', uid, data, from: 'sender' })));
      expect(decodeEnvelope(envelope)).toMatchObject({ ok: true, env: { t: 'push', uid, data, from: 'sender' } });
    }
    expect(JSON.parse(encodePushes('n1', ['x'], 'd', null)[0]?.[1] ?? '')).toMatchObject({ from: null });
  });

  it('refuses, with a reason and without throwing, what it does not understand', () => {
    const cases: [string, string][] = [
      ['{', 'not JSON'],
      ['[1]', 'not an object'],
      ['null', 'not an object'],
      ['{"v":2,"node":"n","t":"push","uid":"u","data":1}', 'unknown version 2'],
      ['{"v":1,"t":"push","uid":"u","data":1}', 'no node id'],
      ['{"v":1,"node":"n","t":"teleport","uid":"u"}', 'unknown type teleport'],
      ['{"v":1,"node":"n","t":"push","uid":5,"data":1}', 'malformed push'],
      ['{"v":1,"node":"n","t":"push","uid":"u"}', 'malformed push'],
      ['{"v":1,"node":"n","t":"push","uid":"u","data":1,"from":7}', 'malformed push'],
      ['{"v":1,"node":"n","t":"publish","group":"","data":1}', 'malformed publish'],
      ['{"v":1,"node":"n","t":"broadcast"}', 'malformed broadcast'],
      ['{"v":1,"node":"n","t":"broadcast","data":1,"exp":"soon"}', 'malformed broadcast'],
      ['{"v":1,"node":"n","t":"push","uid":"u","data":1,"exp":null}', 'malformed push'],
      ['{"v":1,"node":"n","t":"kick","uid":"u"}', 'malformed kick'],
      [`{"v":1,"node":"n","t":"kick","uid":"u","reason":"${'x'.repeat(124)}"}`, 'malformed kick'],
      ['{"v":1,"node":"n","t":"revoke","uid":"u","before":1}', 'malformed revoke'],
      ['{"v":1,"node":"n","t":"revoke","uid":"u","before":"1","until":2}', 'malformed revoke'],
      ['{"v":1,"node":"n","t":"join","group":"g"}', 'malformed join'],
      ['{"v":1,"node":"n","t":"leave","uid":"u","group":{}}', 'malformed leave'],
    ];
    for (const [text, reason] of cases) expect(decodeEnvelope(text), text).toEqual({ ok: false, reason });
  });

  it('reads a push without `from` as from nobody', () => {
    expect(decodeEnvelope('{"v":1,"node":"n","t":"push","uid":"u","data":"x"}')).toEqual({
      ok: true,
      node: 'n',
      env: { v: 1, node: 'n', t: 'push', uid: 'u', data: 'x', from: null },
    });
  });

  it('carries the expiry of a push, spliced or not, as the same JSON', () => {
    const [one] = encodePushes('n1', ['u'], { a: 1 }, null, 1234);
    expect(JSON.parse(one?.[1] ?? '')).toEqual(
      JSON.parse(encodeEnvelope('n1', { t: 'push', uid: 'u', data: { a: 1 }, from: null, exp: 1234 })),
    );
    expect(decodeEnvelope(one?.[1] ?? '')).toMatchObject({ ok: true, env: { t: 'push', exp: 1234 } });
    expect(JSON.parse(encodePushes('n1', ['u'], 'd', null)[0]?.[1] ?? '')).not.toHaveProperty('exp');
  });
});
