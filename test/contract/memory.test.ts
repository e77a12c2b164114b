import { MemoryCluster } from '../../src/index.js';
import { brokerContract } from './broker-contract.js';

let cluster = new MemoryCluster();
brokerContract('in-process bus, 3 nodes', {
  nodes: 3,
  broker: () => cluster.createBroker(),
  reset: () => {
    cluster = new MemoryCluster();
  },
  setDown: (down) => {
    cluster.up = !down;
  },
});
