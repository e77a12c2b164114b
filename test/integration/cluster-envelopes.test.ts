import { afterEach, describe, expect, it } from 'vitest';
import { MemoryCluster } from '../../src/index.js';
import { channel } from '../../src/broker/envelope.js';
import { connect, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { recordingLog } from '../helpers/logs.js';

// What another node might send: from a newer or older version, or broken. A node logs
// what it does not understand, ignores it, and goes on delivering.
const started: Started[] = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

describe('messages from other nodes', () => {
  it('logs and ignores what it does not understand, and keeps delivering', async () => {
    const { logger, lines, line } = recordingLog();
    const cluster = new MemoryCluster();
    const node = await startServer({ broker: cluster.createBroker('node'), logger });
    started.push(node);
    const peer = cluster.createBroker('peer');
    await peer.start(() => undefined);
    const client = await connect(node.url);
    clients.push(client);
    await client.login('x');

    const bad = [
      'not json',
      '{"v":2,"node":"peer","t":"push","uid":"x","data":"from the future"}',
      '{"v":1,"node":"peer","t":"teleport","uid":"x"}',
      '{"v":1,"node":"peer","t":"push","uid":"x"}',
      '{"v":1,"node":"peer","t":"kick","uid":"x"}',
    ];
    const reasons = ['not JSON', 'unknown version 2', 'unknown type teleport', 'malformed push', 'malformed kick'];
    const ignored = Promise.all(reasons.map((reason) => line('cluster: ignoring a message', { reason })));
    for (const message of bad) await peer.publish(channel.uid('x'), message);
    await peer.publish(channel.uid('x'), '{"v":1,"node":"peer","t":"push","uid":"x","data":"still here","from":null}');

    expect(await client.next()).toBe('still here');
    await client.nothingFor(50);
    await ignored;
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings.filter((w) => w.msg === 'cluster: ignoring a message').map((w) => w.fields.reason)).toEqual([
      'not JSON',
      'unknown version 2',
      'unknown type teleport',
      'malformed push',
      'malformed kick',
    ]);
  });
});
