/**
 * The portal in a real browser (headless Chromium through playwright-core): a customer opens a
 * link, finds a failed delivery, reads what their server answered, retries it and sees it
 * succeed. A payload carrying markup and script renders as text and runs nothing. Screenshots go
 * to test/artifacts/ for a person to look at.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { artifactPath, launchBrowser } from '../harness/browser.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

const HOSTILE = {
  order: 42,
  note: '<script>window.__pwned = true; console.log("PWNED")</script>',
  image: '<img src=x onerror="window.__pwned = true">',
  quote: '"><b>bold?</b>',
};
const REFUSAL = 'database is down: <b>try later</b>';

describe('portal in a browser', () => {
  let t: TestApp;
  let rx: Receiver;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let linkUrl: string;
  let deliveryId: string;
  const consoleLines: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({ projects: [{ id: 'default', name: 'Default', retry: { strategy: 'linear', duration: 1, retry_count: 0 } }] });
    // The endpoint answers at creation; then it is down, and says so in HTML.
    const created = await t.api('POST', '/endpoints', { name: 'Orders hook', url: `${rx.url}/orders`, owner_id: 'acme' });
    expect(created.status, created.text).toBe(201);
    const endpointId = created.body.data.uid as string;
    // Another owner's endpoint and delivery, which the page must not show.
    const foreign = await t.api('POST', '/endpoints', { name: 'Beta hook', url: `${rx.url}/beta`, owner_id: 'beta' });
    rx.answer((r) => (r.path === '/orders' ? { status: 503, body: REFUSAL, headers: { 'x-receiver': 'orders-v1' } } : { status: 200, body: 'ok' }));
    await t.api('POST', '/events', { endpoint_id: foreign.body.data.uid, event_type: 'beta.secret', data: { b: 1 } });
    await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'order.paid', data: { order: 41 } });
    const sent = await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'order.created', data: HOSTILE });
    expect(sent.status, sent.text).toBe(201);
    await vi.waitFor(
      async () => {
        const list = (await t.api('GET', `/eventdeliveries?endpoint_id=${endpointId}&status=failure`)).body.data.content;
        expect(list).toHaveLength(2);
        deliveryId = list.find((d: { event_type: string }) => d.event_type === 'order.created').uid;
      },
      { timeout: 20_000, interval: 200 },
    );
    const link = await t.api('POST', '/portal-links', { name: 'Acme Inc.', owner_id: 'acme', kind: 'one_time', can_manage_endpoint: true });
    expect(link.status, link.text).toBe(201);
    linkUrl = link.body.data.url;

    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('console', (m) => consoleLines.push(m.text()));
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await rx?.close();
  });

  it('opens the link, finds the failed delivery and reads the response; markup in the payload stays text', async () => {
    await page.goto(linkUrl);
    expect(new URL(page.url()).pathname).toBe('/portal/');
    await expect.poll(() => page.locator('h1').textContent(), { timeout: 15_000 }).toBe('Endpoints');
    expect(await page.locator('table').textContent()).toContain('Orders hook');
    expect(await page.content()).not.toContain('Beta hook');

    await page.getByRole('navigation').getByRole('link', { name: 'Deliveries' }).click();
    await page.waitForURL('**/portal/deliveries');
    await page.selectOption('select[name="status"]', 'failure');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL((u) => u.pathname === '/portal/deliveries' && u.searchParams.get('status') === 'failure');
    const rows = page.locator('table.deliveries tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await page.locator('table.deliveries').textContent()).not.toContain('beta.secret');
    await page.screenshot({ path: artifactPath('portal-deliveries.png'), fullPage: true });

    await page.getByRole('link', { name: 'order.created' }).click();
    await page.waitForURL(`**/portal/deliveries/${deliveryId}`);
    // The receiver's answer, shown as the text it was (its <b> is not bold).
    const body = page.locator('pre.response-body').first();
    await expect.poll(() => body.isVisible()).toBe(true);
    expect(await body.textContent()).toBe(REFUSAL);
    expect(await page.locator('pre.response-body b').count()).toBe(0);
    expect(await page.locator('.attempt').first().textContent()).toContain('503');

    // The payload is shown as literal text, and none of it ran.
    const payload = page.locator('pre.payload');
    const text = (await payload.textContent())!;
    expect(text).toContain('<script>window.__pwned = true; console.log(\\"PWNED\\")</script>');
    expect(text).toContain('<img src=x onerror=\\"window.__pwned = true\\">');
    expect(await page.locator('pre.payload *').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(1); // the portal's own script file
    expect(await page.evaluate(() => (globalThis as { __pwned?: boolean }).__pwned)).toBeUndefined();
    expect(consoleLines.join('\n')).not.toContain('PWNED');

    // Signatures are hidden in what the page shows of the headers sent.
    // The signature of this delivery's request (order.paid's went to the same URL).
    const sent = rx.requests.find((r) => r.path === '/orders' && r.headers['x-wharf-event-type'] === 'order.created');
    expect(sent, 'order.created was sent to /orders').toBeDefined();
    const signature = String(sent!.headers['x-convoy-signature']);
    expect(signature).toMatch(/v1=/);
    expect(await page.content()).not.toContain(signature.split('v1=')[1]!);
    await page.screenshot({ path: artifactPath('portal-delivery-detail.png'), fullPage: true });
  });

  it('retry: the delivery is sent again and the page shows it succeed', async () => {
    rx.answer(() => ({ status: 200, body: 'thanks, got it' }));
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.waitForURL(`**/portal/deliveries/${deliveryId}**`);
    // The page looks again by itself while the delivery is on its way.
    await page.waitForSelector('.summary .status-success', { timeout: 30_000 });
    expect(await page.locator('.summary').textContent()).toContain('success');
    expect(await page.locator('pre.response-body').first().textContent()).toBe('thanks, got it');
    expect(await page.locator('.attempt').count()).toBe(2);
    expect(await page.getByRole('button', { name: 'Retry' }).count()).toBe(0);
    await page.screenshot({ path: artifactPath('portal-delivery-retried.png'), fullPage: true });
    const api = (await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data;
    expect(api).toMatchObject({ status: 'Success', attempts: 2 });
    expect(pageErrors).toEqual([]);
  });

  it('fits a phone: the delivery list needs no sideways scrolling', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    try {
      await phone.addCookies(await context.cookies());
      const mobile = await phone.newPage();
      await mobile.goto(`${t.url}/portal/deliveries`);
      await expect.poll(() => mobile.locator('h1').textContent()).toBe('Deliveries');
      expect(await mobile.locator('table.deliveries tbody tr').count()).toBe(2);
      const overflow = await mobile.evaluate(() => {
        const root = (globalThis as any).document.documentElement;
        return root.scrollWidth - root.clientWidth;
      });
      expect(overflow).toBeLessThanOrEqual(0);
      await mobile.screenshot({ path: artifactPath('portal-deliveries-phone.png'), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  it('the one-time link does not open a second time', async () => {
    const other = await browser.newContext();
    try {
      const p = await other.newPage();
      const res = await p.goto(linkUrl);
      expect(res?.status()).toBe(410);
      expect(await p.locator('h1').textContent()).toBe('This link was already used');
    } finally {
      await other.close();
    }
  });
});
