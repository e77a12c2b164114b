import { describe, expect, it } from 'vitest';
import { LocalBroker } from '../../src/index.js';
import { brokerStoreContract } from './broker-level.js';

// A cluster of one: the store part of the contract, every case on its one node. The
// publish/subscribe part does not apply (no peer would read an envelope); what it does
// instead is checked below.
brokerStoreContract('LocalBroker', () => ({ brokers: [new LocalBroker()] }), 1);

describe('broker level: LocalBroker publish and subscribe', () => {
  it('has no peers, is in effect at once and delivers nothing, own publishes included', async () => {
    const broker = new LocalBroker();
    const received: string[] = [];
    await broker.start((_channel, message) => received.push(message));
    expect(broker.peers).toBe(false);
    await broker.subscribe('news');
    await broker.publish('news', 'hello');
    // Nothing is ever queued: a turn later (what an in-process bus takes) nothing came.
    await new Promise((resolve) => setImmediate(resolve));
    expect(received).toEqual([]);
    expect(broker.isReady()).toBe(true);
    await broker.close();
  });
});
