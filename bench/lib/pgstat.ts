/**
 * Where Postgres's work per webhook goes, from its own counters: rows inserted, updated (and how
 * many of those were HOT, i.e. wrote no index entry), deleted, and index blocks touched, per table,
 * between two snapshots of pg_stat_user_tables / pg_statio_user_indexes. Plus the commit-rate
 * probe (what this Postgres can commit at all) that bench/e2e.ts compares Wharf's rate with.
 */
import pg from 'pg';

export interface TableCounters {
  ins: number;
  upd: number;
  hot: number;
  del: number;
  /** Indexes on the table (each non-HOT row write adds an entry to every one, partial ones aside). */
  indexes: number;
  /** Index blocks read or hit in shared buffers (insertions and lookups alike). */
  idxBlks: number;
  /** The table's size on disk (heap, with its TOAST and free-space map), and its indexes'. */
  heapBytes: number;
  idxBytes: number;
}

export type StatSnapshot = Map<string, TableCounters>;

/**
 * Counters of every user table of the current database. A backend reports its counters at most
 * once a second and when it goes idle, so take the closing snapshot a little after the load ends.
 */
export async function statSnapshot(client: pg.Client): Promise<StatSnapshot> {
  const { rows } = await client.query<{ t: string; ins: string; upd: string; hot: string; del: string; indexes: string; blks: string; heap: string; idx: string }>(
    `SELECT t.schemaname || '.' || t.relname AS t, t.n_tup_ins AS ins, t.n_tup_upd AS upd, t.n_tup_hot_upd AS hot, t.n_tup_del AS del,
            count(i.indexrelid) AS indexes, coalesce(sum(i.idx_blks_read + i.idx_blks_hit), 0) AS blks,
            pg_table_size(t.relid) AS heap, pg_indexes_size(t.relid) AS idx
     FROM pg_stat_user_tables t LEFT JOIN pg_statio_user_indexes i ON i.relid = t.relid
     GROUP BY t.relid, 1, 2, 3, 4, 5`,
  );
  return new Map(
    rows.map((r) => [
      r.t,
      { ins: Number(r.ins), upd: Number(r.upd), hot: Number(r.hot), del: Number(r.del), indexes: Number(r.indexes), idxBlks: Number(r.blks), heapBytes: Number(r.heap), idxBytes: Number(r.idx) },
    ]),
  );
}

export interface TableCost {
  table: string;
  /** All per webhook. */
  ins: number;
  upd: number;
  hot_upd: number;
  del: number;
  indexes: number;
  /** Index entries written: every insert and non-HOT update adds one to each index. An upper bound (partial indexes). */
  idx_entries: number;
  idx_blks: number;
  /** Growth of the table on disk, and of its indexes, in bytes per webhook (dead row versions and free space included). */
  heap_bytes: number;
  idx_bytes: number;
}

/** Per-webhook deltas of the tables that changed, busiest first. */
export function statDelta(before: StatSnapshot, after: StatSnapshot, webhooks: number): TableCost[] {
  const per = (x: number): number => Math.round((x / Math.max(1, webhooks)) * 100) / 100;
  const out: TableCost[] = [];
  for (const [table, a] of after) {
    const b = before.get(table) ?? { ins: 0, upd: 0, hot: 0, del: 0, indexes: a.indexes, idxBlks: 0, heapBytes: 0, idxBytes: 0 };
    const ins = a.ins - b.ins;
    const upd = a.upd - b.upd;
    const hot = a.hot - b.hot;
    const del = a.del - b.del;
    const blks = a.idxBlks - b.idxBlks;
    if (ins + upd + del + blks === 0) continue;
    out.push({
      table, ins: per(ins), upd: per(upd), hot_upd: per(hot), del: per(del), indexes: a.indexes, idx_entries: per((ins + upd - hot) * a.indexes), idx_blks: per(blks),
      heap_bytes: per(a.heapBytes - b.heapBytes), idx_bytes: per(a.idxBytes - b.idxBytes),
    });
  }
  return out.sort((x, y) => y.idx_blks + y.ins + y.upd - (x.idx_blks + x.ins + x.upd));
}

/** Transactions committed in the other databases of the server (the WAL and CPU figures are not only ours then). */
export async function otherCommits(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>('SELECT coalesce(sum(xact_commit), 0) AS n FROM pg_stat_database WHERE datname IS DISTINCT FROM current_database()');
  return Number(rows[0]!.n);
}

/**
 * pgbench's simple-update shape, cut to its durable core: `clients` connections each commit
 * one-row INSERTs (autocommit, synchronous_commit as configured) for `seconds`. The table lives in
 * the bench database and is dropped afterwards. Returns commits per second.
 */
export async function probeCommits(url: string, clients: number, seconds: number): Promise<{ commits: number; per_s: number }> {
  const admin = new pg.Client({ connectionString: url, application_name: 'wharf-bench-probe' });
  await admin.connect();
  try {
    await admin.query('CREATE TABLE bench_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), v int NOT NULL)');
    const conns = await Promise.all(
      Array.from({ length: clients }, async () => {
        const c = new pg.Client({ connectionString: url, application_name: 'wharf-bench-probe' });
        await c.connect();
        return c;
      }),
    );
    let commits = 0;
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    try {
      await Promise.all(
        conns.map(async (c, k) => {
          // A prepared statement, as pgbench -M prepared: the probe measures commits, not parsing.
          const insert = { name: 'probe', text: 'INSERT INTO bench_probe (v) VALUES ($1)', values: [k] };
          while (performance.now() < until) {
            await c.query(insert);
            commits += 1;
          }
        }),
      );
    } finally {
      await Promise.all(conns.map((c) => c.end()));
    }
    const ms = performance.now() - t0;
    await admin.query('DROP TABLE bench_probe');
    return { commits, per_s: (commits / ms) * 1000 };
  } finally {
    await admin.end();
  }
}

/**
 * After `--history` or `--purge` has written its old rows (gigabytes in minutes, which no
 * deployment's history does): a checkpoint, then commit probes (`clients` connections, 2 s
 * each) until the disk commits at 90 % of `baseline` again, or `maxSeconds` have passed. On this
 * VM the disk committed 37 % slower for about 30 s after a 5 M-row fill and its checkpoint, and
 * a run measured in those seconds measured the disk's backlog, not the history. Returns the
 * probes' rates and the seconds waited.
 */
export async function settleAfterFill(url: string, baseline: number, clients: number, maxSeconds = 180): Promise<{ rates: number[]; seconds: number }> {
  const admin = new pg.Client({ connectionString: url, application_name: 'wharf-bench-probe' });
  await admin.connect();
  const t0 = performance.now();
  try {
    await admin.query('CHECKPOINT');
  } finally {
    await admin.end();
  }
  const rates: number[] = [];
  for (;;) {
    const { per_s } = await probeCommits(url, clients, 2);
    rates.push(per_s);
    const seconds = (performance.now() - t0) / 1000;
    if (per_s >= 0.9 * baseline || seconds >= maxSeconds) return { rates, seconds };
  }
}
