import { MemoryCluster } from '../../src/index.js';
import { brokerLevelContract } from './broker-level.js';

brokerLevelContract('in-process bus', (nodes) => {
  const cluster = new MemoryCluster();
  return { brokers: Array.from({ length: nodes }, () => cluster.createBroker()) };
});
