/**
 * A customer's browser in the portal, for HTTP-level tests: opens a link, keeps its session
 * cookie, and posts forms with the page's CSRF token the way a portal page does.
 */

export interface PortalPage {
  status: number;
  headers: Headers;
  text: string;
  /** Where a redirect points, if it is one. */
  location: string | null;
}

export interface PortalClient {
  /** The session cookie (`wharf_portal=…`), or '' before a successful opening. */
  cookie: string;
  /** Opens the link URL (not following the redirect) and keeps the cookie it sets. */
  open(linkUrl: string): Promise<PortalPage>;
  get(path: string, headers?: Record<string, string>): Promise<PortalPage>;
  /**
   * Posts a form as a portal page would (same-origin Origin and Sec-Fetch-Site; a header given as
   * `null` is left out); `_csrf` is the session's unless the form gives its own (`null`: none).
   */
  post(path: string, form?: Record<string, string | null>, headers?: Record<string, string | null>): Promise<PortalPage>;
  /** The session's CSRF token, read from a portal page's form. */
  csrf(): Promise<string>;
}

export function portalClient(baseUrl: string): PortalClient {
  let cookie = '';
  let csrf: string | null = null;
  const request = async (method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<PortalPage> => {
    const url = path.startsWith('http') ? path : `${baseUrl}${path}`;
    const res = await fetch(url, {
      method,
      redirect: 'manual',
      headers: { ...(cookie ? { cookie } : {}), ...init.headers },
      body: init.body,
    });
    return { status: res.status, headers: res.headers, text: await res.text(), location: res.headers.get('location') };
  };
  const client: PortalClient = {
    get cookie() {
      return cookie;
    },
    async open(linkUrl) {
      const page = await request('GET', linkUrl);
      const set = page.headers.get('set-cookie');
      const value = set ? /wharf_portal=([^;]*)/.exec(set)?.[1] : undefined;
      if (value) {
        cookie = `wharf_portal=${value}`;
        csrf = null;
      }
      return page;
    },
    get: (path, headers) => request('GET', path, { headers }),
    async post(path, form = {}, headers = {}) {
      const fields: Record<string, string> = {};
      if (!('_csrf' in form)) fields._csrf = await client.csrf();
      for (const [k, v] of Object.entries(form)) if (v !== null) fields[k] = v;
      const sent: Record<string, string> = {};
      for (const [k, v] of Object.entries({ 'content-type': 'application/x-www-form-urlencoded', origin: baseUrl, 'sec-fetch-site': 'same-origin', ...headers })) {
        if (v !== null) sent[k] = v;
      }
      return request('POST', path, { body: new URLSearchParams(fields).toString(), headers: sent });
    },
    async csrf() {
      if (csrf) return csrf;
      const page = await request('GET', '/portal/');
      const m = /name="_csrf" value="([^"]+)"/.exec(page.text);
      if (!m) throw new Error(`no CSRF token on /portal/ (status ${page.status})`);
      csrf = m[1]!;
      return csrf;
    },
  };
  return client;
}
