/**
 * The sink broker connectors write into: each message becomes an event (with its deliveries and
 * jobs) or, when it can never become one, a dead letter, in one transaction for the batch (and for
 * the source's other batches that wait with it). Only then does the connector ack. A failure of
 * the database as such rejects the whole batch, so nothing is acked and the broker redelivers; a
 * failure caused by one message's content dead-letters that message alone, so it cannot block the
 * ones after it.
 */
import { checkDepth, checkEventType, type IngestLimits } from './limits.ts';
import type { AcceptResult, BrokerMessage, Sink } from '../core/connector.ts';
import { WharfError } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import type { EventInput } from '../core/types.ts';
import type { SourceDefinition } from '../sources/settings.ts';
import type { Queryable } from '../store/queryable.ts';
import { ingestInTransaction, withIngestTransaction, type IngestDeps } from './persist.ts';
import { forwardedHeaders, readEnvelope } from './normalize.ts';
import { cleanHeaders, noNul } from './headers.ts';

export interface BrokerSource {
  project_id: string;
  definition: SourceDefinition;
}

type Prepared = { ok: true; input: EventInput } | { ok: false; code: string; reason: string };

/** Why a message cannot become an event, or the event it becomes. */
export function prepareMessage(source: BrokerSource, message: Pick<BrokerMessage, 'id' | 'body' | 'headers'>, limits: IngestLimits): Prepared {
  const def = source.definition;
  if (message.body.length > def.max_body_bytes) {
    return {
      ok: false,
      code: 'WHARF_ERR_TOO_LARGE',
      reason: `body is ${message.body.length} bytes, over the source's max_body_bytes (${def.max_body_bytes})`,
    };
  }
  const text = message.body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, code: 'WHARF_ERR_NOT_JSON', reason: `body is not JSON: ${(err as Error).message}` };
  }
  const headers = cleanHeaders(message.headers);
  // A redelivered message without its own key keeps its broker identity, so it is stored once.
  // (An AMQP message-id is the producer's and may hold NUL, which no text column can.)
  const brokerKey = `${def.id}:${noNul(message.id)}`;
  try {
    const forwarded = forwardedHeaders(headers, def.forward_headers);
    if (def.format === 'raw') {
      const eventType = (def.event_type_header ? headers[def.event_type_header] : undefined) ?? def.event_type;
      if (!eventType) {
        return { ok: false, code: 'WHARF_ERR_INVALID', reason: `event_type: the message has no ${def.event_type_header} header and the source sets no event_type` };
      }
      checkEventType(eventType, def.event_type_header ? `${def.event_type_header} header` : 'event_type');
      checkDepth(text, 'body', limits, true);
      return {
        ok: true,
        input: {
          project_id: source.project_id,
          source_id: def.id,
          message_type: 'broadcast',
          event_type: eventType,
          // The producer's bytes, unchanged: they are what endpoints receive and what is signed.
          data: text,
          custom_headers: forwarded,
          idempotency_key: brokerKey,
          headers,
        },
      };
    }
    const input = readEnvelope(parsed, {
      project_id: source.project_id,
      source_id: def.id,
      message_type: null,
      headers,
      strict: false,
      limits,
    });
    return {
      ok: true,
      input: {
        ...input,
        custom_headers: { ...forwarded, ...input.custom_headers },
        idempotency_key: input.idempotency_key ?? brokerKey,
        headers,
      },
    };
  } catch (err) {
    if (err instanceof WharfError) return { ok: false, code: err.code, reason: err.message };
    throw err;
  }
}

/**
 * SQLSTATE classes that come from the data of one statement (22 data exception, 23 integrity
 * violation, 54 program limit exceeded): the same message would fail again, so it is dead-lettered
 * rather than retried. Anything else (connection, shutdown, resources) is a transient failure.
 */
function isMessageError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^(22|23|54)/.test(code);
}

interface DeadLetterInput {
  message: Pick<BrokerMessage, 'id' | 'body' | 'headers' | 'key' | 'receivedAt'>;
  code: string;
  reason: string;
}

/** Keeps poison messages; a redelivered one updates its row instead of adding one. */
async function storeDeadLetters(db: Queryable, source: BrokerSource, letters: DeadLetterInput[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  if (letters.length === 0) return ids;
  // ON CONFLICT cannot touch one row twice in a statement: keep the last of each broker id.
  // Every text kept is made storable (no NUL): a letter that cannot be written would fail its
  // whole batch, and the broker would redeliver it forever. A parser's reason quotes the body.
  const unique = [...new Map(letters.map((l) => [noNul(l.message.id), l])).values()];
  const { rows } = await db.query<{ id: string; broker_id: string }>(
    `INSERT INTO dead_letters (id, project_id, source_id, source_type, broker_id, message_key, body, headers, code, reason, received_at)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[],
       $8::jsonb[], $9::text[], $10::text[], $11::timestamptz[])
     ON CONFLICT (project_id, source_id, broker_id) DO UPDATE
       SET times_seen = dead_letters.times_seen + 1, code = EXCLUDED.code, reason = EXCLUDED.reason, updated_at = now()
     RETURNING id, broker_id`,
    [
      unique.map(() => uuidv7()),
      unique.map(() => source.project_id),
      unique.map(() => source.definition.id),
      unique.map(() => source.definition.type),
      unique.map((l) => noNul(l.message.id)),
      unique.map((l) => (l.message.key === null || l.message.key === undefined ? null : noNul(l.message.key))),
      unique.map((l) => l.message.body),
      unique.map((l) => JSON.stringify(cleanHeaders(l.message.headers))),
      unique.map((l) => l.code),
      unique.map((l) => noNul(l.reason.slice(0, 2000))),
      unique.map((l) => l.message.receivedAt),
    ],
  );
  for (const r of rows) ids.set(r.broker_id, r.id);
  return ids;
}

/** Stores one batch in one transaction; throws when the transaction fails. */
async function storeBatch(deps: IngestDeps, source: BrokerSource, messages: BrokerMessage[], prepared: Prepared[]): Promise<AcceptResult[]> {
  return withIngestTransaction(deps, async (db, handoff) => {
    const ok: number[] = [];
    prepared.forEach((p, i) => p.ok && ok.push(i));
    const outcomes = await ingestInTransaction(deps.boss, db, ok.map((i) => (prepared[i] as { input: EventInput }).input), handoff);
    const results: AcceptResult[] = new Array(messages.length);
    const letters: (DeadLetterInput & { index: number })[] = [];
    prepared.forEach((p, i) => {
      if (!p.ok) letters.push({ index: i, message: messages[i]!, code: p.code, reason: p.reason });
    });
    ok.forEach((i, k) => {
      const o = outcomes[k]!;
      if (o.status === 'rejected') letters.push({ index: i, message: messages[i]!, code: o.code, reason: o.reason });
      else results[i] = o.status === 'stored' ? { status: 'stored', event_id: o.event_id } : { status: 'duplicate', event_id: o.event_id };
    });
    const ids = await storeDeadLetters(db, source, letters);
    for (const l of letters) results[l.index] = { status: 'rejected', code: l.code, reason: l.reason, dead_letter_id: ids.get(noNul(l.message.id))! };
    return results;
  });
}

export interface BrokerSinkOptions {
  /** Told of every batch's results once committed (metrics, logs). */
  onResults?: (results: AcceptResult[], messages: BrokerMessage[]) => void;
}

/** A source's transactions open at once; batches handed over meanwhile wait and go together. */
const SOURCE_TRANSACTIONS = 2;
/** Most messages waiting batches are joined into (a larger batch still goes whole, alone). */
const JOINED_MESSAGES = 500;

interface Waiting {
  messages: BrokerMessage[];
  resolve: (results: AcceptResult[]) => void;
  reject: (err: unknown) => void;
}

/**
 * A source's sink. Its batches are group-committed: at most SOURCE_TRANSACTIONS at once, and
 * the batches that arrive while they run are stored together in the next, in arrival order. A
 * connector that hands over many small batches at once (SQS's ten messages a receive, Pub/Sub's
 * flow-controlled streams, Kafka's partitions) pays one transaction for them, not one each, and a
 * busy source holds at most that many of the pool's connections. Each batch still resolves with
 * its own results, after the commit that stored it; a transient failure rejects every batch of the
 * transaction, and none of them is acked.
 */
export function createBrokerSink(deps: IngestDeps, source: BrokerSource, options: BrokerSinkOptions = {}): Sink {
  const queue: Waiting[] = [];
  let inFlight = 0;

  const store = async (messages: BrokerMessage[]): Promise<AcceptResult[]> => {
    const prepared = messages.map((m) => prepareMessage(source, m, deps.limits));
    let results: AcceptResult[];
    try {
      results = await storeBatch(deps, source, messages, prepared);
    } catch (err) {
      if (!isMessageError(err)) throw err;
      results = await isolate(messages, prepared, err);
    }
    options.onResults?.(results, messages);
    return results;
  };

  const storeGroup = async (group: Waiting[]): Promise<void> => {
    try {
      const results = await store(group.length === 1 ? group[0]!.messages : group.flatMap((w) => w.messages));
      let at = 0;
      for (const w of group) w.resolve(results.slice(at, (at += w.messages.length)));
    } catch (err) {
      for (const w of group) w.reject(err);
    }
  };

  const pump = (): void => {
    while (inFlight < SOURCE_TRANSACTIONS && queue.length > 0) {
      let n = queue[0]!.messages.length;
      let k = 1;
      while (k < queue.length && n + queue[k]!.messages.length <= JOINED_MESSAGES) n += queue[k++]!.messages.length;
      inFlight += 1;
      void storeGroup(queue.splice(0, k)).finally(() => {
        inFlight -= 1;
        pump();
      });
    }
  };

  // The database refused something in the batch (`refusal`): store each half on its own, and
  // halve again what is refused, down to the message the database refuses, which is dead-lettered
  // with its reason while the rest go on. One such message among n costs about 2·log2(n)
  // transactions, not n; the halving is at most log2(n) deep. Transient errors still throw.
  const isolate = async (messages: BrokerMessage[], prepared: Prepared[], refusal: unknown): Promise<AcceptResult[]> => {
    if (messages.length === 1) {
      const reason = `the database refused the event: ${(refusal as Error).message}`;
      return storeBatch(deps, source, messages, [{ ok: false, code: 'WHARF_ERR_DATABASE_REFUSED', reason }]);
    }
    const half = Math.ceil(messages.length / 2);
    const results: AcceptResult[] = [];
    for (const [from, to] of [[0, half], [half, messages.length]] as const) {
      const part = messages.slice(from, to);
      const parts = prepared.slice(from, to);
      try {
        results.push(...(await storeBatch(deps, source, part, parts)));
      } catch (err) {
        if (!isMessageError(err)) throw err;
        results.push(...(await isolate(part, parts, err)));
      }
    }
    return results;
  };

  return {
    accept(messages) {
      if (messages.length === 0) return Promise.resolve([]);
      return new Promise<AcceptResult[]>((resolve, reject) => {
        queue.push({ messages, resolve, reject });
        pump();
      });
    },
  };
}


export type ReplayResult =
  | { status: 'stored' | 'duplicate'; event_id: string }
  | { status: 'rejected'; code: string; reason: string }
  | { status: 'already_replayed'; event_id: string | null }
  | { status: 'source_gone' };

/**
 * Feeds a dead letter through its source's current settings again (after the cause was fixed: an
 * endpoint created, a limit raised). Stored: the letter is marked replayed with its event. Still
 * refused: it stays, with the new reason. One transaction, the letter's row locked throughout.
 */
export async function replayDeadLetter(
  deps: IngestDeps,
  sourceOf: (db: Queryable, projectId: string, sourceId: string) => Promise<BrokerSource | null>,
  projectId: string,
  id: string,
): Promise<ReplayResult | null> {
  return withIngestTransaction(deps, async (db, handoff) => {
    const { rows } = await db.query<{ source_id: string; broker_id: string; body: Buffer; headers: Record<string, string>; replayed_at: Date | null; event_id: string | null }>(
      `SELECT source_id, broker_id, body, headers, replayed_at, event_id FROM dead_letters
       WHERE project_id = $1 AND id = $2 FOR UPDATE`,
      [projectId, id],
    );
    const letter = rows[0];
    if (!letter) return null;
    if (letter.replayed_at) return { status: 'already_replayed', event_id: letter.event_id };
    const source = await sourceOf(db, projectId, letter.source_id);
    if (!source) return { status: 'source_gone' };
    const prepared = prepareMessage(source, { id: letter.broker_id, body: letter.body, headers: letter.headers }, deps.limits);
    let result: ReplayResult;
    if (!prepared.ok) result = { status: 'rejected', code: prepared.code, reason: prepared.reason };
    else {
      const [o] = await ingestInTransaction(deps.boss, db, [prepared.input], handoff);
      result = o!.status === 'rejected' ? { status: 'rejected', code: o!.code, reason: o!.reason } : { status: o!.status, event_id: o!.event_id };
    }
    if (result.status === 'rejected') {
      await db.query('UPDATE dead_letters SET code = $3, reason = $4, updated_at = now() WHERE project_id = $1 AND id = $2', [
        projectId,
        id,
        result.code,
        result.reason,
      ]);
    } else if (result.status === 'stored' || result.status === 'duplicate') {
      await db.query('UPDATE dead_letters SET replayed_at = now(), event_id = $3, updated_at = now() WHERE project_id = $1 AND id = $2', [
        projectId,
        id,
        result.event_id,
      ]);
    }
    return result;
  });
}
