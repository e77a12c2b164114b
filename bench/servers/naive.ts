/**
 * The naive baseline: the seed example written the obvious way with ws. A Map uid ->
 * socket (one socket per uid, as the seed), the first message is the uid, then
 * `uid:message` goes to that uid and `all:message` loops over every socket, each send
 * encoding and framing the text again for each recipient. No heartbeat, no limits.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { heapSnapshotAfterGc, memoryAfterGc, serve } from '../lib/ipc.js';

const uidConnections = new Map<string, WebSocket>();
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) });

wss.on('connection', (ws) => {
  let uid: string | undefined;
  ws.on('message', (data) => {
    const text = (data as Buffer).toString();
    if (uid === undefined) {
      uid = text;
      uidConnections.set(uid, ws);
      ws.send(`login success, your uid is ${uid}`);
      return;
    }
    const [recvUid, message] = text.split(':');
    if (recvUid === 'all') {
      for (const conn of uidConnections.values()) conn.send(message ?? 'null');
    } else if (recvUid !== undefined) {
      uidConnections.get(recvUid)?.send(message ?? 'null');
    }
  });
  ws.on('close', () => {
    if (uid !== undefined) uidConnections.delete(uid);
  });
});

wss.on('listening', () => {
  const address = wss.address();
  serve({
    memory: () => memoryAfterGc(),
    heapSnapshot: (dir) => heapSnapshotAfterGc(dir as string),
    cpu: () => process.cpuUsage(),
    counts: () => ({ connections: wss.clients.size, online: uidConnections.size }),
  });
  process.send?.({ ready: true, port: typeof address === 'object' && address !== null ? address.port : 0 });
});
