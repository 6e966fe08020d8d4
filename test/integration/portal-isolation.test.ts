/**
 * A portal link sees its owner's (or its listed) endpoints and their deliveries, and nothing
 * else: every portal route and action tried with another owner's or another project's ids is
 * refused and changes nothing. Also: can_manage_endpoint, owner scope resolved per request,
 * and what the edit form can change.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { portalClient, type PortalClient } from '../harness/portal.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

const RETRY = { strategy: 'linear', duration: 1, retry_count: 0 };

describe('portal isolation', () => {
  let t: TestApp;
  let rx: Receiver;
  /** Endpoint ids by name; the `same` endpoint exists in both projects under one id. */
  const ep: Record<string, string> = {};
  /** One failed delivery per endpoint name (`o1` and `same@other` in project other). */
  const dl: Record<string, string> = {};

  beforeAll(async () => {
    rx = await startReceiver();
    // Every endpoint fails, so each has a failed delivery to try retrying.
    rx.answer(() => ({ status: 500, body: 'down' }));
    t = await startTestApp({
      projects: [
        { id: 'default', retry: RETRY, endpoints: [{ id: 'same', name: 'Same here', url: `${rx.url}/same`, owner_id: 'acme' }] },
        { id: 'other', retry: RETRY, endpoints: [{ id: 'same', name: 'Same elsewhere', url: `${rx.url}/same-other`, owner_id: 'acme' }] },
      ],
    });
    rx.answer(() => ({ status: 200, body: 'ok' })); // creation answers 2xx (reachability ping)
    for (const [name, owner, project] of [['a1', 'acme', 'default'], ['a2', 'acme', 'default'], ['b1', 'beta', 'default'], ['o1', 'acme', 'other']] as const) {
      const res = await t.api('POST', '/endpoints', { name, url: `${rx.url}/${name}`, owner_id: owner }, project);
      expect(res.status, res.text).toBe(201);
      ep[name] = res.body.data.uid;
    }
    ep.same = 'same';
    rx.answer(() => ({ status: 500, body: 'down' }));
    const targets: [string, string, string][] = [['a1', ep.a1!, 'default'], ['a2', ep.a2!, 'default'], ['b1', ep.b1!, 'default'], ['o1', ep.o1!, 'other'], ['same', 'same', 'default'], ['same@other', 'same', 'other']];
    for (const [key, id, project] of targets) {
      const res = await t.api('POST', '/events', { endpoint_id: id, event_type: `iso.${key}`, data: { key } }, project);
      expect(res.status, res.text).toBe(201);
    }
    for (const [key, id, project] of targets) {
      await vi.waitFor(
        async () => expect((await t.api('GET', `/eventdeliveries?endpoint_id=${id}&status=failure`, undefined, project)).body.data.content).toHaveLength(1),
        { timeout: 20_000, interval: 200 },
      );
      dl[key] = (await t.api('GET', `/eventdeliveries?endpoint_id=${id}`, undefined, project)).body.data.content[0].uid;
    }
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  const link = async (body: Record<string, unknown>): Promise<PortalClient> => {
    const res = await t.api('POST', '/portal-links', { name: 'Portal', kind: 'long_lived', ...body });
    expect(res.status, res.text).toBe(201);
    const browser = portalClient(t.url);
    expect((await browser.open(res.body.data.url)).status).toBe(303);
    return browser;
  };
  const endpointState = async (name: string) => {
    const project = name === 'o1' ? 'other' : 'default';
    const { body } = await t.api('GET', `/endpoints/${ep[name]}`, undefined, project);
    return { status: body.data.status, url: body.data.url, name: body.data.name, http_timeout: body.data.http_timeout, owner_id: body.data.owner_id, secrets: body.data.secrets.length };
  };
  const deliveryState = async (key: string) => {
    const project = key === 'o1' || key === 'same@other' ? 'other' : 'default';
    return (await t.api('GET', `/eventdeliveries/${dl[key]}`, undefined, project)).body.data.status;
  };

  it('an owner link shows that owner\'s endpoints and deliveries only', async () => {
    const acme = await link({ owner_id: 'acme' });
    const home = await acme.get('/portal/');
    expect(home.status).toBe(200);
    for (const own of [ep.a1!, ep.a2!, 'Same here']) expect(home.text).toContain(own);
    for (const foreign of [ep.b1!, ep.o1!, 'Same elsewhere']) expect(home.text).not.toContain(foreign);

    const list = await acme.get('/portal/deliveries');
    expect(list.status).toBe(200);
    for (const own of ['a1', 'a2', 'same']) expect(list.text).toContain(dl[own]!);
    for (const foreign of ['b1', 'o1', 'same@other']) expect(list.text).not.toContain(dl[foreign]!);
    expect(list.text).not.toContain('iso.b1');
    expect(list.text).not.toContain('iso.o1');
  });

  it('pages through the deliveries, newest first, keeping the filters', async () => {
    const acme = await link({ owner_id: 'acme' });
    const first = await acme.get('/portal/deliveries?status=failure&per_page=2');
    expect(first.status).toBe(200);
    const idsOn = (text: string) => [...text.matchAll(/href="\/portal\/deliveries\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
    const page1 = idsOn(first.text);
    expect(page1).toHaveLength(2);
    const older = /href="([^"]+)" rel="next"/.exec(first.text)![1]!.replaceAll('&amp;', '&');
    expect(older).toContain('status=failure');
    expect(older).toContain('per_page=2');
    const second = await acme.get(older);
    const page2 = idsOn(second.text);
    expect(page2.length).toBeGreaterThanOrEqual(1);
    expect(page2.every((id) => !page1.includes(id))).toBe(true);
    expect([...page1, ...page2]).toEqual([...page1, ...page2].sort().reverse());
    expect(second.text).toContain('← Newest');
  });

  /** Every route and action with a foreign id: refused, nothing shown, nothing changed. */
  const triedEverywhere = async (browser: PortalClient, endpointName: string, deliveryKey: string, foreignText: string[]) => {
    const before = { endpoint: endpointName === 'same@other' ? null : await endpointState(endpointName), delivery: await deliveryState(deliveryKey) };
    const endpointId = endpointName === 'same@other' ? 'same' : ep[endpointName]!;
    const e = encodeURIComponent(endpointId);
    const answers = [
      await browser.get(`/portal/endpoints/${e}`),
      await browser.post(`/portal/endpoints/${e}/pause`),
      await browser.post(`/portal/endpoints/${e}/activate`),
      await browser.post(`/portal/endpoints/${e}/edit`, { name: 'pwned', url: 'http://127.0.0.1:1/pwned', http_timeout: '7' }),
      await browser.post(`/portal/endpoints/${e}/rotate-secret`),
      await browser.get(`/portal/endpoints/${e}/new-secret`),
      await browser.get(`/portal/deliveries/${dl[deliveryKey]}`),
      await browser.post(`/portal/deliveries/${dl[deliveryKey]}/retry`),
    ];
    for (const a of answers) {
      expect(a.status, a.text.slice(0, 400)).toBe(404);
      for (const text of foreignText) expect(a.text).not.toContain(text);
    }
    const filtered = await browser.get(`/portal/deliveries?endpoint_id=${e}`);
    expect(filtered.status).toBe(400);
    expect(filtered.text).toContain('endpoint_id: no such endpoint among yours');
    expect(filtered.text).not.toContain(dl[deliveryKey]!);
    if (before.endpoint) expect(await endpointState(endpointName)).toEqual(before.endpoint);
    expect(await deliveryState(deliveryKey)).toBe(before.delivery);
  };

  it('another owner\'s endpoints and deliveries are refused on every route and action', async () => {
    const acme = await link({ owner_id: 'acme', can_manage_endpoint: true });
    await triedEverywhere(acme, 'b1', 'b1', ['iso.b1', '/b1']);
  });

  it('another project\'s endpoints and deliveries are refused, even of the same owner and endpoint id', async () => {
    const acme = await link({ owner_id: 'acme', can_manage_endpoint: true });
    await triedEverywhere(acme, 'o1', 'o1', ['iso.o1', '/o1']);
    // `same` is acme's in both projects: this link's is project default's, never the other's.
    const delivery = await acme.get(`/portal/deliveries/${dl['same@other']}`);
    expect(delivery.status).toBe(404);
    expect((await acme.post(`/portal/deliveries/${dl['same@other']}/retry`)).status).toBe(404);
    expect(await deliveryState('same@other')).toBe('Failure');
    const own = await acme.get('/portal/endpoints/same');
    expect(own.status).toBe(200);
    expect(own.text).toContain('Same here');
    expect(own.text).not.toContain('Same elsewhere');
  });

  it('a link to listed endpoints refuses the owner\'s other endpoints too', async () => {
    const listed = await link({ endpoints: [ep.a1], can_manage_endpoint: true });
    await triedEverywhere(listed, 'a2', 'a2', ['iso.a2']);
    const home = await listed.get('/portal/');
    expect(home.text).toContain(ep.a1!);
    expect(home.text).not.toContain(ep.a2!);
    const page = await listed.get(`/portal/deliveries/${dl.a1}`);
    expect(page.status).toBe(200);
  });

  it('ids that are not ids are not found, not errors', async () => {
    const acme = await link({ owner_id: 'acme', can_manage_endpoint: true });
    for (const path of ['/portal/deliveries/not-a-uuid', '/portal/deliveries/00000000-0000-7000-8000-000000000000', '/portal/endpoints/%27%20OR%201%3D1', '/portal/endpoints/nope']) {
      expect((await acme.get(path)).status, path).toBe(404);
    }
    expect((await acme.post('/portal/deliveries/not-a-uuid/retry')).status).toBe(404);
  });

  it('without can_manage_endpoint: pause, edit and rotate are refused with 403; retry is allowed', async () => {
    const viewer = await link({ owner_id: 'acme' });
    const before = await endpointState('a2');
    const page = await viewer.get(`/portal/endpoints/${ep.a2}`);
    expect(page.status).toBe(200);
    expect(page.text).not.toContain('/pause');
    expect(page.text).not.toContain('rotate-secret');
    for (const action of ['pause', 'activate', 'edit', 'rotate-secret']) {
      const res = await viewer.post(`/portal/endpoints/${ep.a2}/${action}`, { url: 'http://127.0.0.1:1/x', name: 'x', http_timeout: '3' });
      expect(res.status, action).toBe(403);
      expect(res.text).toContain('can show endpoints but not change them');
    }
    expect(await endpointState('a2')).toEqual(before);
    // Retrying a failed delivery is not managing the endpoint: any link may.
    const retried = await viewer.post(`/portal/deliveries/${dl.a2}/retry`);
    expect(retried.status).toBe(303);
    expect(retried.location).toBe(`/portal/deliveries/${dl.a2}?done=retried`);
    await vi.waitFor(async () => {
      const d = (await t.api('GET', `/eventdeliveries/${dl.a2}`)).body.data;
      expect([d.status, d.attempts]).toEqual(['Failure', 2]);
    }, { timeout: 20_000, interval: 200 });
    // Failed again (the receiver still answers 500), it offers the button again.
    const detail = await viewer.get(`/portal/deliveries/${dl.a2}`);
    expect(detail.text).toContain(`action="/portal/deliveries/${dl.a2}/retry"`);
  });

  it('an owner link shows endpoints the owner gets after it was made', async () => {
    const acme = await link({ owner_id: 'acme' });
    rx.answer(() => ({ status: 200, body: 'ok' }));
    const res = await t.api('POST', '/endpoints', { name: 'late-comer', url: `${rx.url}/late`, owner_id: 'acme' });
    rx.answer(() => ({ status: 500, body: 'down' }));
    expect(res.status, res.text).toBe(201);
    const home = await acme.get('/portal/');
    expect(home.text).toContain('late-comer');
    expect((await acme.get(`/portal/endpoints/${res.body.data.uid}`)).status).toBe(200);
    // And an endpoint given to another owner leaves it at once.
    await t.api('PUT', `/endpoints/${res.body.data.uid}`, { owner_id: 'beta' });
    expect((await acme.get(`/portal/endpoints/${res.body.data.uid}`)).status).toBe(404);
  });

  it('the edit form changes name, URL and timeout only, validated as the API does', async () => {
    const acme = await link({ owner_id: 'acme', can_manage_endpoint: true });
    const path = `/portal/endpoints/${ep.a2}/edit`;
    const bad = await acme.post(path, { name: 'a2', url: 'ftp://example.com/x', http_timeout: '10' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('url: must be an http or https URL');
    expect(bad.text).toContain('value="ftp://example.com/x"');
    const badTimeout = await acme.post(path, { name: 'a2', url: `${rx.url}/a2`, http_timeout: 'soon' });
    expect(badTimeout.status).toBe(400);
    expect(badTimeout.text).toContain('http_timeout: must be an integer from 1 to 300');

    // A new URL must answer the reachability ping (the receiver answers 500 here).
    const unreachable = await acme.post(path, { name: 'a2', url: `${rx.url}/a2-new`, http_timeout: '7' });
    expect(unreachable.status).toBe(400);
    expect(unreachable.text).toContain('url: could not be reached (it answered HTTP 500)');
    expect((await endpointState('a2')).url).toBe(`${rx.url}/a2`);

    rx.answer((r) => (r.path === '/a2-new' ? { status: 200, body: 'ok' } : { status: 500, body: 'down' }));
    const ok = await acme.post(path, { name: 'a2 renamed', url: `${rx.url}/a2-new`, http_timeout: '7', owner_id: 'beta', description: 'x' })
      .finally(() => rx.answer(() => ({ status: 500, body: 'down' })));
    expect(ok.status).toBe(303);
    expect(ok.location).toBe(`/portal/endpoints/${ep.a2}?done=saved`);
    expect(await endpointState('a2')).toMatchObject({ name: 'a2 renamed', url: `${rx.url}/a2-new`, http_timeout: 7, owner_id: 'acme' });
    const shown = await acme.get(ok.location!);
    expect(shown.text).toContain('Settings saved.');
  });

  it('a delivery that succeeded is not retried (409), and says why', async () => {
    const acme = await link({ owner_id: 'acme' });
    rx.answer(() => ({ status: 200, body: 'ok' }));
    try {
      expect((await acme.post(`/portal/deliveries/${dl.a1}/retry`)).status).toBe(303);
      await vi.waitFor(async () => expect(await deliveryState('a1')).toBe('Success'), { timeout: 20_000, interval: 200 });
    } finally {
      rx.answer(() => ({ status: 500, body: 'down' }));
    }
    const again = await acme.post(`/portal/deliveries/${dl.a1}/retry`);
    expect(again.status).toBe(409);
    expect(again.text).toContain('This delivery is success; only failed or discarded deliveries can be retried.');
    expect((await acme.get(`/portal/deliveries/${dl.a1}`)).text).not.toContain('/retry"');
  });

  it('rotate shows the new secret once, on a page a reload cannot repeat', async () => {
    const acme = await link({ owner_id: 'acme', can_manage_endpoint: true });
    const before = await endpointState('a1');
    const posted = await acme.post(`/portal/endpoints/${ep.a1}/rotate-secret`);
    expect(posted.status).toBe(303);
    expect(posted.location).toBe(`/portal/endpoints/${ep.a1}/new-secret`);
    const res = await acme.get(posted.location!);
    expect(res.status).toBe(200);
    const secret = /<code id="new-secret">([^<]+)<\/code>/.exec(res.text)?.[1];
    expect(secret).toBeTruthy();
    expect((await endpointState('a1')).secrets).toBe(before.secrets + 1);
    // A reload shows it no more and rotates nothing.
    const reloaded = await acme.get(posted.location!);
    expect(reloaded.status).toBe(303);
    expect(reloaded.location).toBe(`/portal/endpoints/${ep.a1}?done=secret-shown`);
    expect((await endpointState('a1')).secrets).toBe(before.secrets + 1);
    const notice = await acme.get(reloaded.location!);
    expect(notice.text).toContain('was shown once');
    // Not shown again anywhere.
    expect(notice.text).not.toContain(secret!);
    expect((await acme.get(`/portal/endpoints/${ep.a1}`)).text).not.toContain(secret!);
    expect((await t.api('GET', `/endpoints/${ep.a1}`)).text).not.toContain(secret!);
    // The API records the link that rotated it, by id.
    const madeBy = (await t.api('GET', `/endpoints/${ep.a1}`)).body.data.secrets[0].created_by;
    expect(madeBy).toEqual({ type: 'portal_link', id: expect.stringMatching(/\S/), via: 'portal' });
  });
});
