/**
 * The operator dashboard in a real browser (Debian's chromium through playwright-core): sign in
 * with a project key, create an endpoint with Basic authentication, send an event through the
 * API, find the delivery, resend it, rotate the secret, create a one-time portal link and open it.
 * Screenshots of a few pages, at desktop and phone widths, go to docs/screenshots/ (the README
 * shows them).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { launchBrowser } from '../harness/browser.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'docs', 'screenshots');
const shot = (name: string): string => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return join(SCREENSHOTS, name);
};

describe('dashboard in a browser', () => {
  let t: TestApp;
  let rx: Receiver;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let endpointId: string;
  let deliveryId: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({ projects: [{ id: 'shop', name: 'Shop', retry: { strategy: 'linear', duration: 1, retry_count: 0 } }] });
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // Forms that are hard to undo ask first (wharf.js); the operator agrees.
    page.on('dialog', (d) => void d.accept());
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await rx?.close();
  });

  it('signs in with a project key', async () => {
    await page.goto(`${t.url}/`);
    expect(new URL(page.url()).pathname).toBe('/dashboard');
    await page.getByLabel('API key or operator token').fill(t.keys.shop!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('**/dashboard/projects/shop');
    expect(await page.locator('h1').textContent()).toBe('Shop');
  });

  it('creates an endpoint with Basic authentication; its first secret is shown once', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Endpoints' }).click();
    await page.getByRole('link', { name: 'New endpoint' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Orders');
    await page.getByLabel('URL', { exact: true }).fill(`${rx.url}/orders`);
    await page.getByLabel('Owner id').fill('acme');
    await page.getByLabel('Timeout (seconds)').fill('10');
    await page.selectOption('select[name="auth_type"]', 'basic_auth');
    await page.getByLabel('Username (Basic)').fill('wharf');
    await page.getByLabel('Password (Basic)').fill('hunter2-but-longer');
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    await page.waitForURL('**/new-secret');
    expect(await page.locator('#new-secret').textContent()).toMatch(/\S{16,}/);
    endpointId = /endpoints\/([^/]+)\/new-secret/.exec(page.url())![1]!;
    const api = (await t.api('GET', `/endpoints/${endpointId}`, undefined, 'shop')).body.data;
    expect(api).toMatchObject({ name: 'Orders', http_timeout: 10, owner_id: 'acme', authentication: { type: 'basic_auth' } });
    await page.getByRole('link', { name: 'Back to Orders' }).click();
    expect(await page.locator('h1').textContent()).toBe('Orders');
  });

  it('an event sent through the API shows as a delivery, which can be resent', async () => {
    const sent = await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'order.paid', data: { order: 7 } }, 'shop');
    expect(sent.status, sent.text).toBe(201);
    await vi.waitFor(() => expect(rx.requests.filter((r) => r.path === '/orders')).toHaveLength(1), { timeout: 20_000, interval: 200 });
    expect(rx.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('wharf:hunter2-but-longer').toString('base64')}`);

    await page.getByRole('navigation').getByRole('link', { name: 'Deliveries' }).click();
    await page.waitForURL('**/dashboard/projects/shop/deliveries');
    await expect.poll(async () => {
      await page.reload();
      return page.locator('table.deliveries .status-success').count();
    }, { timeout: 20_000 }).toBe(1);
    await page.getByRole('link', { name: 'order.paid' }).click();
    await page.waitForURL('**/deliveries/*');
    deliveryId = /deliveries\/([^/?]+)/.exec(page.url())![1]!;
    expect(await page.locator('.attempt').count()).toBe(1);
    await page.screenshot({ path: shot('dashboard-delivery-desktop.png') });

    await page.getByRole('button', { name: 'Resend' }).click();
    await page.waitForURL(`**/deliveries/${deliveryId}**`);
    // The page looks again by itself while the delivery is on its way. The delivery and its
    // attempts are two API reads, so one refresh may show the new attempt before the new status.
    await expect.poll(async () => `${await page.locator('.attempt').count()} ${await page.locator('.summary').textContent()}`, { timeout: 30_000 })
      .toMatch(/^2 .*success/s);
    expect(rx.requests.filter((r) => r.path === '/orders')).toHaveLength(2);
  });

  it('rotates the secret with a chosen overlap', async () => {
    await page.goto(`${t.url}/dashboard/projects/shop/endpoints/${endpointId}`);
    await page.getByLabel(/keeps signing beside the new one/).fill('900');
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.waitForURL('**/new-secret');
    const secret = (await page.locator('#new-secret').textContent())!;
    expect(await page.locator('main').textContent()).toContain('900 s');
    const secrets = (await t.api('GET', `/endpoints/${endpointId}`, undefined, 'shop')).body.data.secrets;
    expect(secrets).toHaveLength(2);
    expect(JSON.stringify(secrets)).not.toContain(secret); // shown once, on that page only
    await page.reload();
    expect(await page.locator('#new-secret').count()).toBe(0);
  });

  it('creates a one-time portal link, which opens the customer portal', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Portal links' }).click();
    await page.getByLabel('Name (shown to the customer)').fill('Acme Inc.');
    await page.getByLabel(/^Owner id/).fill('acme');
    await page.getByRole('button', { name: 'Create link' }).click();
    await page.waitForURL('**/portal-links/created');
    const url = (await page.locator('#link-url').textContent())!;
    expect(url).toMatch(new RegExp(`^${t.url}/portal/l/`));

    const customer = await browser.newContext();
    try {
      const portal = await customer.newPage();
      await portal.goto(url);
      expect(new URL(portal.url()).pathname).toBe('/portal/');
      expect(await portal.locator('table').textContent()).toContain('Orders');
    } finally {
      await customer.close();
    }
    await page.goto(`${t.url}/dashboard/projects/shop/portal-links`);
    expect(await page.locator('table.links').textContent()).toContain('used');
  });

  it('overview and lists fit a phone without sideways scrolling; screenshots for the README', async () => {
    await page.goto(`${t.url}/dashboard/projects/shop`);
    await page.screenshot({ path: shot('dashboard-overview-desktop.png') });
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      await phone.addCookies(await context.cookies());
      const mobile = await phone.newPage();
      for (const path of ['', '/endpoints', '/deliveries', `/endpoints/${endpointId}`]) {
        await mobile.goto(`${t.url}/dashboard/projects/shop${path}`);
        const overflow = await mobile.evaluate(() => {
          const root = (globalThis as any).document.documentElement;
          return root.scrollWidth - root.clientWidth;
        });
        expect(overflow, path || 'overview').toBeLessThanOrEqual(0);
      }
      await mobile.goto(`${t.url}/dashboard/projects/shop`);
      await mobile.screenshot({ path: shot('dashboard-overview-phone.png') });
    } finally {
      await phone.close();
    }
    expect(pageErrors).toEqual([]);
  });
});
