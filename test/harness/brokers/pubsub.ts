/** Starts the pubsub broker for the integration tests (filled in with the pubsub connector). */
export async function start(): Promise<(() => Promise<void>) | void> {}
