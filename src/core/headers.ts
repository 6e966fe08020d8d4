/** Headers a sender sets itself; a custom header of the same name never replaces them. */
export const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'proxy-connection',
  'user-agent',
]);

/** Most characters a tenant's custom headers may add to a request, names and values together. */
export const MAX_CUSTOM_HEADERS_LENGTH = 8192;

/**
 * Why `value` cannot go out as a header value as given, or null. Visible ASCII, spaces and tabs
 * only: a control character (C0, DEL, C1) would split the header or make every HTTP client refuse
 * the request, and anything outside ASCII has no one encoding receivers agree on, so it is refused
 * where it is given rather than failing (or arriving altered) on every attempt later.
 */
export function headerValueProblem(value: string): string | null {
  if (/^[\t\x20-\x7e]*$/.test(value)) return null;
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  if (/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(value)) return 'must not contain control characters (line breaks, NUL)';
  return 'must be printable ASCII: a header value cannot carry other characters as they are';
}
