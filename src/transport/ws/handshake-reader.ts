import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { readRequestHead, PARTIAL, type RequestHead } from './request-head.js';
import { HANDSHAKE_TIMEOUT_TEXT, MALFORMED_REQUEST_TEXT, refuseUpgrade } from './upgrade.js';

/** The socket's handshake state while it is read here. */
const kHandshake = Symbol('uidpush.handshake');

interface Reading {
  reader: HandshakeReader;
  /** When it was accepted, in ms since the epoch. */
  at: number;
  /** What has arrived of a head that is not complete yet. */
  buffered: Buffer | undefined;
}

type ReadSocket = Socket & { [kHandshake]?: Reading | undefined };

/** What the reader does with a socket whose head it has read, or handed on. */
export type UpgradeHandler = (request: RequestHead, socket: Socket, head: Buffer) => void;

/**
 * Reads the upgrade request of the WebSocket port's connections before node:http does.
 * A WebSocket handshake in the common shape ({@link readRequestHead}) is completed without
 * node:http's parser, its request object and its connection listeners, which took about a
 * fifth of the server's time per connect. Anything else, a plain request, a malformed
 * one, an oversize or unusual head, goes to node:http with the bytes read so far, so it
 * is answered (or upgraded) exactly as before.
 *
 * Its one deadline, the login timeout, is kept by the transport's tick ({@link sweep}),
 * as node does with one sweep; a socket handed to node:http is under node's timeouts.
 */
export class HandshakeReader {
  readonly #upgrade: UpgradeHandler;
  readonly #timeoutMs: number;
  /** Sockets reading their head, in the order they were accepted (so by deadline). */
  readonly #reading = new Set<ReadSocket>();
  #handOff: ((socket: Socket) => void) | undefined;

  constructor(upgrade: UpgradeHandler, timeoutMs: number) {
    this.#upgrade = upgrade;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Takes over `server`'s connections: `event` is the one node:http's connection listener
   * is on ('connection', or 'secureConnection' for https). That listener is kept, and a
   * socket goes to it when its request is not one read here.
   */
  install(server: HttpServer, event: 'connection' | 'secureConnection'): void {
    const listeners = server.listeners(event) as ((socket: Socket) => void)[];
    const node = listeners[0];
    if (listeners.length !== 1 || node === undefined) {
      throw new Error(`expected node:http's one ${event} listener, found ${String(listeners.length)}`);
    }
    server.removeListener(event, node);
    this.#handOff = (socket) => {
      node.call(server, socket);
    };
    server.on(event, (socket: Socket) => {
      this.#accept(socket);
    });
  }

  /** Answers 408 to the sockets that have not sent a whole head within the timeout. */
  sweep(now: number): void {
    for (const socket of this.#reading) {
      const reading = socket[kHandshake];
      if (reading !== undefined && now - reading.at <= this.#timeoutMs) break;
      this.release(socket);
      refuseUpgrade(socket, 408, HANDSHAKE_TIMEOUT_TEXT);
    }
  }

  /** Destroys every socket still reading its head: at shutdown. */
  destroyAll(): void {
    for (const socket of this.#reading) {
      this.release(socket);
      socket.destroy();
    }
  }

  #accept(socket: ReadSocket): void {
    socket[kHandshake] = { reader: this, at: Date.now(), buffered: undefined };
    this.#reading.add(socket);
    socket.on('data', socketOnData);
    socket.on('end', socketOnEnd);
    socket.on('error', socketOnError);
    socket.on('close', socketOnClose);
  }

  /** @internal */
  received(socket: ReadSocket, reading: Reading, chunk: Buffer): void {
    const data = reading.buffered === undefined ? chunk : Buffer.concat([reading.buffered, chunk]);
    const read = readRequestHead(data);
    if (read === PARTIAL) {
      reading.buffered = data;
      return;
    }
    this.release(socket);
    if (read === undefined) {
      // node:http's listener, attached at once, reads these bytes first, then the socket.
      socket.unshift(data);
      this.#handOff?.(socket);
      return;
    }
    // Until the connection's own listener (after a token check, maybe), what arrives
    // waits in the socket's buffer: node leaves an upgraded socket the same way.
    socket.pause();
    this.#upgrade(read.request, socket, data.subarray(read.end));
  }

  /** @internal the peer sent FIN before its head was whole. */
  ended(socket: ReadSocket, reading: Reading): void {
    this.release(socket);
    // What node answers too: nothing to a socket that sent nothing, 400 to a partial request.
    if (reading.buffered === undefined) socket.destroy();
    else refuseUpgrade(socket, 400, MALFORMED_REQUEST_TEXT);
  }

  /** @internal stops reading `socket` here: its listeners off, out of the sweep. */
  release(socket: ReadSocket): void {
    socket[kHandshake] = undefined;
    this.#reading.delete(socket);
    socket.removeListener('data', socketOnData);
    socket.removeListener('end', socketOnEnd);
    socket.removeListener('error', socketOnError);
    socket.removeListener('close', socketOnClose);
  }
}

function socketOnData(this: ReadSocket, chunk: Buffer): void {
  const reading = this[kHandshake];
  if (reading !== undefined) reading.reader.received(this, reading, chunk);
}

function socketOnEnd(this: ReadSocket): void {
  const reading = this[kHandshake];
  if (reading !== undefined) reading.reader.ended(this, reading);
}

function socketOnError(this: ReadSocket): void {
  this[kHandshake]?.reader.release(this);
  this.destroy();
}

function socketOnClose(this: ReadSocket): void {
  this[kHandshake]?.reader.release(this);
}
