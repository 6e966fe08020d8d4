import { connect, createServer, type Server, type Socket } from 'node:net';

/** Whether something accepts TCP connections at `host:port` (the last colon splits). */
export function answers(hostPort: string, timeoutMs = 1_000): Promise<boolean> {
  const i = hostPort.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1)) });
    socket.setTimeout(timeoutMs);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** A port on 127.0.0.1 that was free a moment ago (for a server a test starts later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A TCP relay on 127.0.0.1:`port` to `target` (host:port, or a function giving it when the relay
 * comes up), which a test takes down and brings back as a broker outage or network loss would.
 */
export class TcpRelay {
  readonly port: number;
  readonly #target: () => string;
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();

  constructor(port: number, target: string | (() => string)) {
    this.port = port;
    this.#target = typeof target === 'string' ? () => target : target;
  }

  async up(): Promise<void> {
    const target = this.#target();
    const i = target.lastIndexOf(':');
    const server = createServer((client) => {
      const upstream = connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.#server = server;
  }

  /** Closes the listener and cuts every relayed connection. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
