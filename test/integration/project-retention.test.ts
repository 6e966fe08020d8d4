/**
 * A project's own retention, through the API (issue 15: "retention policy per project, YAML and
 * API"): GET and PUT /api/v1/projects/{id}. The purge keeps each kind for the shorter of the
 * project's age and the operator's: a project may keep less than the operator allows, never more.
 * What the API may not set is refused naming the field and where the operator sets it; a reload of
 * the config file keeps what the project set; another project's key reaches none of it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { uuidv7Floor } from '../../src/core/ids.ts';
import { policiesOf, purgeRetention, type PurgeReport } from '../../src/store/retention.ts';
import { startTestApp, type RawResponse, type TestApp } from '../harness/app.ts';

const DAY = 86_400_000;
const idAt = (ms: number): string => `${uuidv7Floor(ms).slice(0, 24)}${randomBytes(6).toString('hex')}`;

describe("a project's own retention, through the API", () => {
  let t: TestApp;
  const logLines: string[] = [];

  beforeAll(async () => {
    t = await startTestApp({
      logLines,
      projects: [
        { id: 'shop', retention: { events: '30d', attempts: '7d' } },
        { id: 'other' },
      ],
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const expectInvalid = (res: RawResponse, field: string, says: string): void => {
    expect(res.status, res.text).toBe(400);
    expect(res.body.data).toMatchObject({ code: 'WHARF_ERR_INVALID', field });
    expect(res.body.message).toContain(field);
    expect(res.body.message).toContain(says);
  };
  const put = (project: string, retention: unknown): Promise<RawResponse> => t.api('PUT', '', { config: { retention } }, project);
  const oldEvent = async (project: string, daysAgo: number): Promise<string> => {
    const id = idAt(Date.now() - daysAgo * DAY);
    await t.app.pool.query(
      `INSERT INTO events (id, project_id, event_type, message_type, endpoint_id, data, created_at)
       VALUES ($1, $2, 'old.thing', 'single', 'ok', '{}', now() - make_interval(secs => $3))`,
      [id, project, daysAgo * 86_400],
    );
    return id;
  };
  const exists = async (id: string): Promise<boolean> => (await t.app.pool.query('SELECT 1 FROM events WHERE id = $1', [id])).rowCount === 1;
  /** A purge as the app's task makes it: the operator's policy from the config file now. */
  const purge = (): Promise<PurgeReport> =>
    vi.waitFor(
      async () => {
        const { config } = loadConfig({ file: t.configFile, env: {} });
        const report = await purgeRetention(t.app.pool, policiesOf(config), { batchSize: 100, pauseMs: 1 });
        if (report === null) throw new Error('another purge holds the lock');
        return report;
      },
      { timeout: 10_000, interval: 50 },
    );

  it("GET shows the project's own ages, the operator's and those in force", async () => {
    const res = await t.api('GET', '', undefined, 'shop');
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      status: true,
      data: {
        uid: 'shop',
        name: 'shop',
        config: {
          retention: {},
          retention_limit: { events: '30d', attempts: '7d', dead_letters: 'off', meta_events: 'off' },
          retention_in_force: { events: '30d', attempts: '7d', dead_letters: 'off', meta_events: 'off' },
        },
        deleted_at: null,
      },
    });
    expect(Date.parse(res.body.data.created_at)).not.toBeNaN();
  });

  it('PUT sets them: each kind kept for the shorter of the two, off following the operator', async () => {
    const res = await put('shop', { events: '7d', attempts: '90d', meta_events: 'off', dead_letters: '720h' });
    expect(res.status, res.text).toBe(202);
    expect(res.body.data.config).toEqual({
      retention: { events: '7d', attempts: '90d', meta_events: 'off', dead_letters: '720h' },
      retention_limit: { events: '30d', attempts: '7d', dead_letters: 'off', meta_events: 'off' },
      // events: the project's is shorter; attempts: the operator's; dead letters: only the project
      // sets one; meta events: neither.
      retention_in_force: { events: '7d', attempts: '7d', dead_letters: '720h', meta_events: 'off' },
    });
    expect((await t.api('GET', '', undefined, 'shop')).body.data.config.retention_in_force.events).toBe('7d');
    // The operator sees the change, and which credential made it; never the key itself.
    const logged = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'a project set its own retention through the API');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ project: 'shop', retention: { events: '7d', attempts: '90d' }, actor: { type: 'api_key', via: 'api' } });
    expect(logLines.join('')).not.toContain(t.keys.shop);
  });

  it("the purge goes by the project's shorter age, and the 404 says which", async () => {
    expect((await put('other', { events: '1d' })).status).toBe(202);
    const shopOld = await oldEvent('shop', 10); // past the shop's 7d, within the operator's 30d
    const shopNew = await oldEvent('shop', 5);
    const otherOld = await oldEvent('other', 2); // the operator keeps the other's events forever
    const otherNew = await oldEvent('other', 0.5);
    await purge();
    expect([await exists(shopOld), await exists(shopNew), await exists(otherOld), await exists(otherNew)]).toEqual([false, true, false, true]);
    const gone = await t.api('GET', `/events/${shopOld}`, undefined, 'shop');
    expect(gone.status).toBe(404);
    expect(gone.body.message).toBe(`event "${shopOld}" was purged by the project's retention policy (events, with their deliveries and attempts, older than 7d)`);
  });

  it('a project asking for more than the operator allows keeps only what the operator allows', async () => {
    expect((await put('shop', { events: '365d' })).body.data.config.retention_in_force.events).toBe('30d');
    const older = await oldEvent('shop', 40);
    const kept = await oldEvent('shop', 20);
    await purge();
    expect([await exists(older), await exists(kept)]).toEqual([false, true]);
  });

  it("a reload of the config file keeps what the project set; null clears it", async () => {
    expect((await put('shop', { events: '14d' })).status).toBe(202);
    const doc = parse(readFileSync(t.configFile, 'utf8'));
    doc.projects[0].retention = { events: '60d', attempts: '3d' };
    writeFileSync(t.configFile, stringify(doc));
    await t.app.reload(loadConfig({ file: t.configFile, env: {} }).config);
    const after = (await t.api('GET', '', undefined, 'shop')).body.data.config;
    expect(after.retention).toEqual({ events: '14d' });
    expect(after.retention_limit).toMatchObject({ events: '60d', attempts: '3d' });
    expect(after.retention_in_force).toMatchObject({ events: '14d', attempts: '3d' });

    const cleared = await put('shop', null);
    expect(cleared.status).toBe(202);
    expect(cleared.body.data.config.retention).toEqual({});
    expect(cleared.body.data.config.retention_in_force).toMatchObject({ events: '60d', attempts: '3d' });
  });

  it.each([
    ['a name', { name: 'renamed', config: { retention: { events: '1d' } } }, 'name', 'projects[].name'],
    ['a logo', { logo_url: 'https://example.com/logo.png' }, 'logo_url', 'is not set through the API'],
    ['a retry strategy', { config: { strategy: { type: 'linear', duration: 10, retry_count: 3 } } }, 'config.strategy', 'projects[].retry'],
    ['no config', {}, 'config', 'is required'],
    ['config without retention', { config: {} }, 'config.retention', 'null clears'],
    ['a kind Wharf does not keep', { config: { retention: { searches: '1d' } } }, 'config.retention.searches', 'unknown field'],
    ['an age under a minute', { config: { retention: { events: '30s' } } }, 'config.retention.events', 'at least 1m'],
    ['an age that is no age', { config: { retention: { attempts: '7 days' } } }, 'config.retention.attempts', 'such as 30d'],
    ['a number', { config: { retention: { events: 30 } } }, 'config.retention.events', 'such as 30d'],
    ['a long text', { config: { retention: { events: '9'.repeat(100_000) } } }, 'config.retention.events', 'such as 30d'],
  ])('PUT with %s → 400 naming the field, nothing changed', async (_name, body, field, says) => {
    const before = (await t.api('GET', '', undefined, 'other')).body.data.config;
    expectInvalid(await t.api('PUT', '', body, 'other'), field, says);
    expect((await t.api('GET', '', undefined, 'other')).body.data.config).toEqual(before);
  });

  it("another project's key reaches neither the answer nor the setting", async () => {
    const before = (await t.api('GET', '', undefined, 'shop')).body.data.config;
    for (const method of ['GET', 'PUT']) {
      const res = await t.request(method, '/api/v1/projects/shop', {
        raw: method === 'PUT' ? JSON.stringify({ config: { retention: { events: '1m' } } }) : undefined,
        headers: { authorization: `Bearer ${t.keys.other}`, 'content-type': 'application/json' },
      });
      expect(res.status).toBe(401);
    }
    expect((await t.api('GET', '', undefined, 'shop')).body.data.config).toEqual(before);
  });
});
