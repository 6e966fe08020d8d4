/** The portal's HTML helpers live in src/web/html.ts, shared with the operator dashboard. */
export * from '../web/html.ts';
