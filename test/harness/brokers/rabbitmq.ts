/** Starts the rabbitmq broker for the integration tests (filled in with the rabbitmq connector). */
export async function start(): Promise<(() => Promise<void>) | void> {}
