import { describe, expect, it } from 'vitest';
import { PushFrames } from '../../src/delivery/push-frames.js';
import { encodeTextFrame } from '../../src/delivery/ws-frame.js';
import type { Data } from '../../src/core/types.js';
import { Codec } from '../../src/protocol/codec.js';
import type { Scope } from '../../src/protocol/json-v1.js';

function counted(data: Data, from: string | null, scope: Scope, to: string | null): { frames: PushFrames; builds: () => number } {
  let n = 0;
  const frames = new PushFrames(data, from, scope, to, () => {
    n++;
  });
  return { frames, builds: () => n };
}

const text = (frame: Buffer): string => frame.subarray(2).toString('utf8');

describe('PushFrames', () => {
  it('builds nothing until a frame is asked for', () => {
    const { builds } = counted('x', null, 'broadcast', null);
    expect(builds()).toBe(0);
  });

  it('builds the seed frame once, however many connections ask', () => {
    const { frames, builds } = counted('hello', null, 'broadcast', null);
    const first = frames.frameFor(Codec.Seed, '');
    for (let i = 0; i < 100; i++) expect(frames.frameFor(Codec.Seed, `u${String(i)}`)).toBe(first);
    expect(builds()).toBe(1);
    expect(first.equals(encodeTextFrame('hello'))).toBe(true);
  });

  it('builds the v1 frame of a broadcast or group push once, and the seed frame apart', () => {
    const { frames, builds } = counted({ a: 1 }, 'sender', 'group', 'room');
    const v1 = frames.frameFor(Codec.JsonV1, 'x');
    expect(frames.frameFor(Codec.JsonV1, 'y')).toBe(v1);
    expect(JSON.parse(text(v1))).toEqual({ type: 'message', scope: 'group', from: 'sender', to: 'room', data: { a: 1 } });
    expect(builds()).toBe(1);
    expect(text(frames.frameFor(Codec.Seed, 'x'))).toBe('{"a":1}');
    expect(builds()).toBe(2);
  });

  it('builds the v1 frame of a push to uids once per uid in a row, naming it', () => {
    const { frames, builds } = counted('hi', null, 'uid', null);
    const a = frames.frameFor(Codec.JsonV1, 'a');
    expect(frames.frameFor(Codec.JsonV1, 'a')).toBe(a);
    const b = frames.frameFor(Codec.JsonV1, 'b');
    expect(JSON.parse(text(a))).toMatchObject({ scope: 'uid', to: 'a', data: 'hi' });
    expect(JSON.parse(text(b))).toMatchObject({ scope: 'uid', to: 'b', data: 'hi' });
    expect(builds()).toBe(2);
  });

  it('sends a Buffer as its UTF-8 text to both protocols', () => {
    const { frames } = counted(Buffer.from('bytes é'), null, 'broadcast', null);
    expect(text(frames.frameFor(Codec.Seed, ''))).toBe('bytes é');
    expect(JSON.parse(text(frames.frameFor(Codec.JsonV1, '')))).toMatchObject({ data: 'bytes é' });
  });

  it('sends a seed client a non-string value as its JSON text', () => {
    const { frames } = counted([1, 'two', null], null, 'broadcast', null);
    expect(text(frames.seed())).toBe('[1,"two",null]');
  });
});
