/** Starts the kafka broker for the integration tests (filled in with the kafka connector). */
export async function start(): Promise<(() => Promise<void>) | void> {}
