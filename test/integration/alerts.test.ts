/**
 * Alerts (meta events): an endpoint's notification_url and the project's meta-event URL hear,
 * signed, when deliveries keep failing and when the endpoint changes state, whatever changed it
 * (the breaker, an operator's pause or activation). Each alert is kept with its outcome.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyConvoySignature } from '../../src/sources/verifiers/convoy.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Received, type Receiver } from '../harness/receiver.ts';
import { eventually } from './connectors/conformance.ts';

const META_SECRET = 'meta-events-secret-for-the-ops-team';
const SW_META_SECRET = `whsec_${Buffer.from('standard-webhooks-meta-secret-32').toString('base64')}`;

describe('alerts', () => {
  let t: TestApp;
  let endpointRx: Receiver; // the customer's endpoint, made to fail
  let notifyRx: Receiver; // the endpoint's notification_url
  let opsRx: Receiver; // the project's meta-event URL
  beforeAll(async () => {
    [endpointRx, notifyRx, opsRx] = await Promise.all([startReceiver(), startReceiver(), startReceiver()]);
    endpointRx.answer(() => ({ status: 500, body: 'down for maintenance' }));
    t = await startTestApp({
      projects: [
        {
          id: 'default',
          retry: { strategy: 'linear', duration: 1, retry_count: 0 },
          breaker: { consecutive_failures: 4, failure_rate: 0, alert_after: 2 },
          meta_events: { url: `${opsRx.url}/ops`, secret: META_SECRET },
        },
        {
          id: 'sw',
          signature: { scheme: 'standard-webhooks' },
          retry: { strategy: 'linear', duration: 1, retry_count: 0 },
          meta_events: { url: `${opsRx.url}/sw`, secret: SW_META_SECRET, event_types: ['endpoint.status_changed'] },
        },
      ],
    });
  });
  afterAll(async () => {
    await t?.stop();
    await Promise.all([endpointRx?.close(), notifyRx?.close(), opsRx?.close()]);
  });

  const convoyOk = (r: Received, secret: string) =>
    verifyConvoySignature(String(r.headers['x-convoy-signature']), r.body, {
      secrets: [secret],
      hash: 'SHA256',
      encoding: 'hex',
      advanced: true,
      toleranceSeconds: 300,
      now: Math.floor(Date.now() / 1000),
    }).ok;
  const payload = (r: Received) => JSON.parse(r.body.toString('utf8')) as { id: string; event_type: string; data: Record<string, unknown> & { endpoint: Record<string, unknown> } };
  const alertsAt = (rx: Receiver, path: string, endpointId: string) =>
    rx.requests.filter((r) => r.path === path && payload(r).data.endpoint.id === endpointId);

  it('a failing streak, then the breaker, then pause and activation each alert both destinations, signed', async () => {
    const created = await t.api('POST', '/endpoints', {
      name: 'flaky',
      url: `${endpointRx.url}/flaky`,
      notification_url: `${notifyRx.url}/notify`,
      support_email: 'oncall@customer.example',
      skip_ping_validation: true,
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.data.uid as string;
    const secret = created.body.data.secrets[0].value as string;
    expect(created.body.data.notification_url).toBe(`${notifyRx.url}/notify`);

    // Two failed attempts reach alert_after: one endpoint.failing alert, to each destination.
    for (let i = 0; i < 2; i++) {
      await t.api('POST', '/events', { endpoint_id: id, event_type: 'order.paid', data: { i } });
      await eventually(async () => endpointRx.requests.length, (n) => n >= i + 1, 15_000, `attempt ${i + 1}`);
    }
    await eventually(async () => alertsAt(notifyRx, '/notify', id).length + alertsAt(opsRx, '/ops', id).length, (n) => n >= 2, 15_000, 'failing alerts');
    const [toEndpoint] = alertsAt(notifyRx, '/notify', id);
    const [toOps] = alertsAt(opsRx, '/ops', id);
    for (const r of [toEndpoint!, toOps!]) {
      const p = payload(r);
      expect(p.event_type).toBe('endpoint.failing');
      expect(r.headers['x-wharf-event-type']).toBe('endpoint.failing');
      expect(p.data.consecutive_failures).toBe(2);
      expect(p.data.last_status_code).toBe(500);
      expect(p.data.endpoint).toMatchObject({ id, name: 'flaky', status: 'active', support_email: 'oncall@customer.example' });
    }
    // The endpoint's alert is signed with the endpoint's secret; the team's with the meta secret.
    expect(convoyOk(toEndpoint!, secret)).toBe(true);
    expect(convoyOk(toEndpoint!, META_SECRET)).toBe(false);
    expect(convoyOk(toOps!, META_SECRET)).toBe(true);
    expect(convoyOk(toOps!, secret)).toBe(false);

    // A third failure continues the same streak: no second failing alert.
    await t.api('POST', '/events', { endpoint_id: id, event_type: 'order.paid', data: { i: 2 } });
    await eventually(async () => endpointRx.requests.length, (n) => n >= 3, 15_000, 'attempt 3');
    // The fourth trips the breaker: active → inactive, with the breaker's reason.
    await t.api('POST', '/events', { endpoint_id: id, event_type: 'order.paid', data: { i: 3 } });
    const changed = (rx: Receiver, path: string) =>
      alertsAt(rx, path, id).filter((r) => payload(r).event_type === 'endpoint.status_changed');
    await eventually(async () => changed(notifyRx, '/notify').length + changed(opsRx, '/ops').length, (n) => n >= 2, 15_000, 'state change alerts');
    for (const r of [changed(notifyRx, '/notify')[0]!, changed(opsRx, '/ops')[0]!]) {
      expect(payload(r).data).toMatchObject({ previous_status: 'active', status: 'inactive', reason: '4 consecutive failed attempts' });
    }
    expect(alertsAt(notifyRx, '/notify', id).filter((r) => payload(r).event_type === 'endpoint.failing')).toHaveLength(1);

    // Operators' changes alert too: inactive → paused → active.
    expect((await t.api('PUT', `/endpoints/${id}/pause`)).body.data.status).toBe('paused');
    expect((await t.api('POST', `/endpoints/${id}/activate`)).body.data.status).toBe('active');
    await eventually(async () => changed(opsRx, '/ops').length, (n) => n >= 3, 15_000, 'operator state change alerts');
    // Alerts are sent concurrently, so they may arrive in either order.
    const operatorChanges = changed(opsRx, '/ops').map((r) => payload(r).data).slice(1);
    expect(operatorChanges.sort((a, b) => String(a.status).localeCompare(String(b.status)))).toMatchObject([
      { previous_status: 'paused', status: 'active', reason: 'activated by the API' },
      { previous_status: 'inactive', status: 'paused', reason: 'paused by the API' },
    ]);

    // Every alert is kept with its outcome; the API shows them, newest first.
    await eventually(
      async () => (await t.api('GET', `/meta-events?endpoint_id=${id}&status=success`)).body.data.content.length,
      (n) => n === 8,
      15_000,
      'meta events recorded as sent',
    );
    const listed = await t.api('GET', `/meta-events?endpoint_id=${id}&target=project`);
    expect(listed.body.data.content.map((m: { event_type: string }) => m.event_type)).toEqual([
      'endpoint.status_changed',
      'endpoint.status_changed',
      'endpoint.status_changed',
      'endpoint.failing',
    ]);
    const one = listed.body.data.content[3];
    expect(one).toMatchObject({ status: 'Success', attempts: 1, last_status_code: 200, url: `${opsRx.url}/ops` });
    expect(one.payload.id).toBe(one.uid);
    expect(listed.text).not.toContain(META_SECRET);
  });

  it('an alert the receiver refuses is retried later; once it has come to rest it can be resent', async () => {
    let refusals = 1;
    notifyRx.answer((r) => (r.path === '/refusing' && refusals-- > 0 ? { status: 503, body: 'busy' } : { status: 200, body: 'ok' }));
    const created = await t.api('POST', '/endpoints', {
      name: 'paused-by-hand',
      url: `${endpointRx.url}/never`,
      notification_url: `${notifyRx.url}/refusing`,
      skip_ping_validation: true,
    });
    const id = created.body.data.uid as string;
    await t.api('PUT', `/endpoints/${id}/pause`);
    const endpointAlert = async () =>
      (await t.api('GET', `/meta-events?endpoint_id=${id}&target=endpoint`)).body.data.content[0] as { uid: string; status: string; attempts: number; last_status_code: number };
    const m = await eventually(endpointAlert, (a) => a?.attempts === 1, 10_000, 'a refused alert');
    expect(m).toMatchObject({ status: 'Scheduled', last_status_code: 503 });
    expect((await t.api('PUT', `/meta-events/${m.uid}/resend`)).status).toBe(409); // still being tried
    // The first retry comes 5-10 s after the first attempt.
    await eventually(endpointAlert, (a) => a.status === 'Success', 20_000, 'the alert delivered on its retry');
    expect(await endpointAlert()).toMatchObject({ attempts: 2, last_status_code: 200 });
    expect(notifyRx.requests.filter((r) => r.path === '/refusing')).toHaveLength(2);
    const resent = await t.api('PUT', `/meta-events/${m.uid}/resend`);
    expect(resent.status, resent.text).toBe(200);
    const before = notifyRx.requests.filter((r) => r.path === '/refusing').length;
    await eventually(async () => notifyRx.requests.filter((r) => r.path === '/refusing').length, (n) => n === before + 1, 15_000, 'the resent alert');
    // The receiver has the request a moment before its outcome is recorded.
    await eventually(async () => (await t.api('GET', `/meta-events/${m.uid}`)).body.data.status, (s) => s === 'Success', 10_000, 'the resent alert recorded');
    expect((await t.api('GET', '/meta-events/not-a-uuid')).status).toBe(404);
  }, 40_000);

  it('Standard Webhooks projects sign alerts their way, and a project takes only the alert types it lists', async () => {
    const created = await t.api('POST', '/endpoints', { name: 'sw-endpoint', url: `${endpointRx.url}/sw`, skip_ping_validation: true }, 'sw');
    const id = created.body.data.uid as string;
    // Failures past alert_after (default 5) would alert endpoint.failing, which this project does not take.
    for (let i = 0; i < 5; i++) await t.api('POST', '/events', { endpoint_id: id, event_type: 'x', data: { i } }, 'sw');
    await eventually(async () => endpointRx.requests.filter((r) => r.path === '/sw').length, (n) => n >= 5, 20_000, 'five failures');
    await t.api('PUT', `/endpoints/${id}/pause`, undefined, 'sw');
    await eventually(async () => alertsAt(opsRx, '/sw', id).length, (n) => n >= 1, 15_000, 'the pause alert');
    const alerts = alertsAt(opsRx, '/sw', id);
    expect(alerts.map((r) => payload(r).event_type)).toEqual(['endpoint.status_changed']);
    const r = alerts[0]!;
    const verified = new Webhook(SW_META_SECRET).verify(r.body.toString('utf8'), {
      'webhook-id': String(r.headers['webhook-id']),
      'webhook-timestamp': String(r.headers['webhook-timestamp']),
      'webhook-signature': String(r.headers['webhook-signature']),
    }) as { event_type: string };
    expect(verified.event_type).toBe('endpoint.status_changed');
  });

  it("posts state changes to the endpoint's Slack and Teams webhooks as text, keeping their URLs sealed", async () => {
    const chatRx = await startReceiver();
    try {
      const slack = `${chatRx.url}/services/T0001/B0001/slack-token-part`;
      const teams = `${chatRx.url}/webhookb2/teams-token-part`;
      const created = await t.api('POST', '/endpoints', {
        name: 'chatty <b>',
        url: `${endpointRx.url}/chatty`,
        slack_webhook_url: slack,
        teams_webhook_url: teams,
        skip_ping_validation: true,
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.data.uid as string;
      // Shown hidden, like any credential; sealed at rest.
      expect(created.body.data).toMatchObject({ slack_webhook_url: '********', teams_webhook_url: '********' });
      expect(created.text).not.toContain('token-part');
      const { rows } = await t.app.pool.query('SELECT credentials_enc FROM endpoints WHERE id = $1', [id]);
      expect(rows[0].credentials_enc).not.toContain('token-part');

      expect((await t.api('PUT', `/endpoints/${id}/pause`)).status).toBe(202);
      await eventually(async () => chatRx.requests.length, (n) => n >= 2, 15_000, 'chat alerts');
      const bySlack = chatRx.requests.find((r) => r.path === '/services/T0001/B0001/slack-token-part')!;
      const byTeams = chatRx.requests.find((r) => r.path === '/webhookb2/teams-token-part')!;
      for (const r of [bySlack, byTeams]) {
        expect(r.headers['content-type']).toBe('application/json');
        expect(r.headers['x-convoy-signature']).toBeUndefined();
        const { text } = JSON.parse(r.body.toString('utf8')) as { text: string };
        expect(text).toContain('endpoint "chatty <b>"');
        expect(text).toContain('is now paused, was active');
      }
      // The rows name the webhook's origin only, and end as successes.
      type Listed = { target: string; url: string }[];
      const chats = (l: Listed) => l.filter((m) => m.target === 'slack' || m.target === 'teams');
      await eventually(
        async () => (await t.api('GET', `/meta-events?endpoint_id=${id}&status=Success`)).body.data.content as Listed,
        (l) => chats(l).length === 2,
        15_000,
        'chat alerts recorded',
      );
      const listed = await t.api('GET', `/meta-events?endpoint_id=${id}`);
      expect(listed.text).not.toContain('token-part');
      expect(chats(listed.body.data.content as Listed).map((m) => [m.target, m.url]).sort()).toEqual([['slack', chatRx.url], ['teams', chatRx.url]]);

      // Sent back hidden, a URL is kept; "" removes it: the next change goes to Slack only.
      const kept = await t.api('PUT', `/endpoints/${id}`, { slack_webhook_url: '********', teams_webhook_url: '' });
      expect(kept.status, kept.text).toBe(202);
      expect(kept.body.data.slack_webhook_url).toBe('********');
      expect(kept.body.data.teams_webhook_url ?? null).toBeNull();
      expect((await t.api('PUT', `/endpoints/${id}/pause`)).status).toBe(202);
      await eventually(async () => chatRx.requests.length, (n) => n >= 3, 15_000, 'the next chat alert');
      await new Promise((r) => setTimeout(r, 500));
      expect(chatRx.requests.slice(2).map((r) => r.path)).toEqual(['/services/T0001/B0001/slack-token-part']);
      expect(JSON.parse(chatRx.requests[2]!.body.toString('utf8')).text).toContain('is now active, was paused');

      // A URL that is not one is refused by name.
      const bad = await t.api('PUT', `/endpoints/${id}`, { slack_webhook_url: 'not a url' });
      expect(bad.status).toBe(400);
      expect(bad.body.message).toContain('slack_webhook_url');
    } finally {
      await chatRx.close();
    }
  });
});
