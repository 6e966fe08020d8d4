/**
 * The minimum strengths of what a user gives Wharf to keep something closed, and the one check
 * that judges them, so the config file, the REST API and the portal refuse the same values with
 * the same words. Messages give lengths only, never the value.
 */

/** A project API key opens that project's whole API. */
export const MIN_API_KEY_LENGTH = 32;

/**
 * An endpoint's signing secret, an alert target's, an HTTP source's verifier secret, password or
 * API key. For a Standard Webhooks secret, the bytes its base64 decodes to.
 */
export const MIN_SECRET_LENGTH = 16;

/** Why `value` is too short to keep anything closed, or null: "must be at least 16 characters (got 5)". */
export function shortSecretProblem(value: string, minimum: number): string | null {
  return value.length < minimum ? `must be at least ${minimum} characters (got ${value.length})` : null;
}

/** shortSecretProblem for key material counted in bytes (a decoded base64 key). */
export function shortKeyProblem(key: Uint8Array, minimum: number): string | null {
  return key.length < minimum ? `must hold at least ${minimum} bytes of key material (got ${key.length})` : null;
}
