import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, testBed, type Started, type TestClient } from '../helpers/clients.js';
import { innerClient, type InnerClient } from '../helpers/inner.js';

const bed = testBed();
let started: Started;

function client(uid: string): Promise<TestClient> {
  return bed.client(started.url, uid);
}

async function inner(): Promise<InnerClient> {
  return bed.track(await innerClient(started.server.address().inner?.port ?? 0));
}

beforeEach(async () => {
  started = await bed.setup({ innerPort: 0, apiBodyLimit: 2048 });
});
afterEach(bed.cleanup);

describe('inner text port', () => {
  it('listens on loopback only, and only when turned on', async () => {
    expect(started.server.address().inner).toMatchObject({ host: '127.0.0.1' });
    const off = await startServer();
    expect(off.server.address().inner).toBeUndefined();
    await off.stop();
  });

  it('pushes the JSON object to the uid and answers ok, or fail when offline', async () => {
    const alice = await client('alice');
    const port = await inner();
    port.send('{"uid":"alice","percent":"88%"}\n');
    expect(await port.answer()).toBe('ok');
    expect(await alice.next()).toBe('{"uid":"alice","percent":"88%"}');
    port.send('{"uid":"nobody","x":1}\n');
    expect(await port.answer()).toBe('fail');
  });

  it('answers each line of a pipelined batch in order, across chunk boundaries', async () => {
    const alice = await client('alice');
    const port = await inner();
    port.send('{"uid":"alice","n":1}\n{"uid":"bob","n":2}\r\n{"uid":"al');
    port.send('ice","n":3}\n\n');
    expect([await port.answer(), await port.answer(), await port.answer()]).toEqual(['ok', 'fail', 'ok']);
    expect(await alice.next()).toBe('{"uid":"alice","n":1}');
    expect(await alice.next()).toBe('{"uid":"alice","n":3}');
  });

  it('answers malformed lines with error <code> and stays usable', async () => {
    const alice = await client('alice');
    const port = await inner();
    const bad = ['not json', '["alice"]', '"alice"', 'null', '{"to":"alice"}', '{"uid":5}', '{"uid":""}', `{"uid":"${'a'.repeat(129)}"}`];
    for (const line of bad) port.send(`${line}\n`);
    for (let i = 0; i < bad.length; i++) expect(await port.answer()).toBe('error bad_request');
    port.send(`{"uid":"alice","pad":"${'x'.repeat(3000)}"}\n`);
    expect(await port.answer()).toBe('error too_large');
    port.send('{"uid":"alice","after":"errors"}\n');
    expect(await port.answer()).toBe('ok');
    expect(await alice.next()).toBe('{"uid":"alice","after":"errors"}');
  });
});
