import type pg from 'pg';

/** Anything a repository can run a statement on: the pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;
