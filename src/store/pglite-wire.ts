import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import { SCRAM_MECHANISM, ScramExchange, scramVerifier } from './scram.ts';

/**
 * Serves one PGlite database over the Postgres wire protocol to several client connections.
 *
 * PGlite has one backend, so connections take turns. The unit of a turn is a message group: a
 * simple Query, or an extended-protocol run (Parse, Bind, Describe, Execute, …) up to its Sync.
 * A group runs whole, so no other connection's Bind can replace this one's unnamed portal between
 * its Bind and Execute; and while a connection has a transaction open, only its groups run.
 * (@electric-sql/pglite-socket queues single messages and, outside a transaction, takes the next
 * from any connection: under concurrent load that interleaves extended-protocol runs and answers
 * one connection's query with another's portal. That is why Wharf serves PGlite itself.)
 */
export interface WireServer {
  port: number;
  stop(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** Postgres's own limit on a startup packet; authentication messages are smaller still. */
const MAX_STARTUP_BYTES = 10_000;
const MAX_AUTH_BYTES = 2_000;
/** A client that has not authenticated by then is dropped, so idle sockets cannot hold every slot. */
const AUTH_TIMEOUT_MS = 10_000;

interface Conn {
  id: number;
  socket: Socket;
  buffer: Buffer;
  started: boolean;
  /** Between the startup message and a correct proof: the startup message and the SASL exchange so far. */
  pending: { startup: Buffer; user: string; scram: ScramExchange; stage: 'first' | 'final' } | null;
  authTimer: NodeJS.Timeout | null;
  group: Buffer[];
  closed: boolean;
}

interface Turn {
  conn: Conn;
  messages: Buffer[];
}

/**
 * `password`: every connection must prove it knows it (SCRAM-SHA-256, so it never crosses the
 * socket) before PGlite sees its startup message; a wrong or missing one gets SQLSTATE 28P01.
 */
export async function serveWire(db: PGlite, options: { host: string; port: number; maxConnections: number; password: string }): Promise<WireServer> {
  const verifier = await scramVerifier(options.password);
  const conns = new Set<Conn>();
  const turns: Turn[] = [];
  let owner: Conn | null = null;
  let running = false;
  let nextId = 1;

  const pump = (): void => {
    if (running) return;
    const i = turns.findIndex((t) => owner === null || t.conn === owner);
    if (i === -1) return;
    const [turn] = turns.splice(i, 1);
    running = true;
    void runTurn(turn!).finally(() => {
      running = false;
      pump();
    });
  };

  const runTurn = async ({ conn, messages }: Turn): Promise<void> => {
    if (conn.closed) return;
    try {
      await db.runExclusive(async () => {
        for (const message of messages) {
          await db.execProtocolRawStream(new Uint8Array(message), {
            onRawData: (data) => {
              if (!conn.closed && data.length > 0) conn.socket.write(Buffer.from(data));
            },
          });
        }
      });
      owner = db.isInTransaction() ? conn : null;
    } catch {
      // PGlite itself failed (not an SQL error, which travels as an ErrorResponse): drop the client.
      owner = null;
      conn.socket.destroy();
    }
  };

  const close = async (conn: Conn): Promise<void> => {
    if (conn.closed) return;
    conn.closed = true;
    if (conn.authTimer) clearTimeout(conn.authTimer);
    conns.delete(conn);
    for (let i = turns.length - 1; i >= 0; i--) if (turns[i]!.conn === conn) turns.splice(i, 1);
    if (owner === conn) {
      // Its transaction must not hold the database for everyone else.
      while (running) await new Promise((r) => setImmediate(r));
      owner = null;
      if (db.isInTransaction()) await db.exec('ROLLBACK').catch(() => undefined);
    }
    pump();
  };

  const refuse = (conn: Conn, code: string, message: string): void => {
    conn.socket.end(errorResponse(code, message));
    void close(conn);
  };

  const onData = (conn: Conn, chunk: Buffer): void => {
    if (conn.closed) return;
    conn.buffer = conn.buffer.length ? Buffer.concat([conn.buffer, chunk]) : chunk;
    for (;;) {
      if (!conn.started) {
        // Startup-phase messages have no type byte: int32 length, int32 code.
        if (conn.buffer.length < 8) return;
        const len = conn.buffer.readInt32BE(0);
        if (len < 8 || len > MAX_STARTUP_BYTES) return refuse(conn, '08P01', 'invalid length of startup packet');
        if (conn.buffer.length < len) return;
        const code = conn.buffer.readInt32BE(4);
        const msg = conn.buffer.subarray(0, len);
        conn.buffer = conn.buffer.subarray(len);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          conn.socket.write('N');
          continue;
        }
        if (code === CANCEL_REQUEST) {
          conn.socket.destroy();
          return;
        }
        conn.started = true;
        // PGlite trusts whoever reaches it: the password is asked here, before it sees anything.
        conn.pending = { startup: Buffer.from(msg), user: startupUser(msg), scram: new ScramExchange(verifier), stage: 'first' };
        conn.socket.write(authMessage(10, Buffer.from(`${SCRAM_MECHANISM}\0\0`))); // AuthenticationSASL
        continue;
      }
      if (conn.pending) {
        if (conn.buffer.length < 5) return;
        const len = 1 + conn.buffer.readInt32BE(1);
        const { startup, user, scram, stage } = conn.pending;
        const failed = `password authentication failed for user "${user}"`;
        // Anything but the expected SASL message (a query, a too long message) is a failed login.
        if (conn.buffer[0] !== 0x70 || len < 5 || len > MAX_AUTH_BYTES) return refuse(conn, '28P01', failed);
        if (conn.buffer.length < len) return;
        const body = conn.buffer.subarray(5, len);
        conn.buffer = conn.buffer.subarray(len);
        if (stage === 'first') {
          const answer = scram.first(saslInitialResponse(body) ?? '');
          if (answer === null) return refuse(conn, '28P01', failed);
          conn.pending.stage = 'final';
          conn.socket.write(authMessage(11, Buffer.from(answer))); // AuthenticationSASLContinue
          continue;
        }
        const answer = scram.final(body.toString('utf8'));
        if (answer === null) return refuse(conn, '28P01', failed);
        conn.pending = null;
        if (conn.authTimer) clearTimeout(conn.authTimer);
        conn.authTimer = null;
        // AuthenticationSASLFinal; PGlite's answer to the startup message brings AuthenticationOk.
        conn.socket.write(authMessage(12, Buffer.from(answer)));
        turns.push({ conn, messages: [startup] });
        pump();
        continue;
      }
      if (conn.buffer.length < 5) return;
      const len = 1 + conn.buffer.readInt32BE(1);
      // Only Wharf gets here, but a length that does not move the buffer forward would spin forever.
      if (len < 5) return refuse(conn, '08P01', 'invalid message length');
      if (conn.buffer.length < len) return;
      const type = String.fromCharCode(conn.buffer[0]!);
      const msg = Buffer.from(conn.buffer.subarray(0, len));
      conn.buffer = conn.buffer.subarray(len);
      if (type === 'X') {
        conn.socket.end();
        void close(conn);
        return;
      }
      conn.group.push(msg);
      // Query and Sync end a group; Flush does too, since its sender waits for an answer.
      if (type === 'Q' || type === 'S' || type === 'H') {
        turns.push({ conn, messages: conn.group });
        conn.group = [];
        pump();
      }
    }
  };

  const server: Server = createServer((socket) => {
    const conn: Conn = { id: nextId++, socket, buffer: Buffer.alloc(0), started: false, pending: null, authTimer: null, group: [], closed: false };
    conn.authTimer = setTimeout(() => refuse(conn, '08006', 'authentication timed out'), AUTH_TIMEOUT_MS);
    conn.authTimer.unref();
    conns.add(conn);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => onData(conn, chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => void close(conn));
  });
  server.maxConnections = options.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;

  return {
    port,
    async stop() {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of [...conns]) {
        conn.socket.destroy();
        await close(conn);
      }
      while (running) await new Promise((r) => setImmediate(r));
      await closing;
    },
  };
}

/** The `user` parameter of a startup message (int32 length, int32 version, then name/value pairs). */
function startupUser(msg: Buffer): string {
  const parts = msg.subarray(8).toString('utf8').split('\0');
  for (let i = 0; i + 1 < parts.length; i += 2) if (parts[i] === 'user') return parts[i + 1]!;
  return '';
}

/** SASLInitialResponse's data, if it names SCRAM-SHA-256: mechanism\0, int32 length, data. */
function saslInitialResponse(body: Buffer): string | null {
  const end = body.indexOf(0);
  if (end === -1 || body.subarray(0, end).toString('latin1') !== SCRAM_MECHANISM || body.length < end + 5) return null;
  const len = body.readInt32BE(end + 1);
  if (len < 0 || body.length !== end + 5 + len) return null;
  return body.subarray(end + 5).toString('utf8');
}

/** An Authentication message ('R') of the given kind. */
function authMessage(kind: number, data: Buffer): Buffer {
  const out = Buffer.alloc(9 + data.length);
  out.write('R', 0);
  out.writeInt32BE(8 + data.length, 1);
  out.writeInt32BE(kind, 5);
  data.copy(out, 9);
  return out;
}

function errorResponse(code: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`, 'utf8');
  const out = Buffer.alloc(5 + fields.length);
  out.write('E', 0);
  out.writeInt32BE(4 + fields.length, 1);
  fields.copy(out, 5);
  return out;
}
