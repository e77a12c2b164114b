import { brokerContract } from './broker-contract.js';

// One node and no broker: the default. The same operations answer for a cluster of one.
brokerContract('embedded (one node)', { nodes: 1, broker: () => undefined });
