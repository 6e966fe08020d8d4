-- Convoy's retry_config per subscription. A subscription keeps the parts it was given (NULL: none,
-- the project's `retry` decides); routing copies them onto each delivery the subscription routed,
-- so a later change to the subscription leaves deliveries already made on the schedule they began.
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS retry_config jsonb;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS retry jsonb;
