/** Starts the sqs broker for the integration tests (filled in with the sqs connector). */
export async function start(): Promise<(() => Promise<void>) | void> {}
