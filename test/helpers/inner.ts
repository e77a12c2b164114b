import { createConnection, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

/** A raw TCP client of the inner text port that reads answers line by line. */
export interface InnerClient {
  socket: Socket;
  /** Writes `text` as is (a line needs its own `\n`). */
  send(text: string): void;
  /** The next answer line not yet taken, waiting for it. */
  answer(): Promise<string>;
  close(): void;
}

/** Connects to the inner text port on 127.0.0.1:`port`. */
export async function innerClient(port: number): Promise<InnerClient> {
  const socket = createConnection({ host: '127.0.0.1', port });
  await new Promise((resolve) => socket.once('connect', resolve));
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: socket }).on('line', (line) => {
    lines.push(line);
    for (const w of waiters.splice(0)) w();
  });
  return {
    socket,
    send: (text) => socket.write(text),
    answer: async () => {
      while (lines.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
      return lines.shift() as string;
    },
    close: () => socket.destroy(),
  };
}
