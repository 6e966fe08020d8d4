-- Alerts posted to an endpoint's Slack or Teams incoming webhook (Convoy's slack_webhook_url and
-- teams_webhook_url). Those URLs are credentials, kept sealed with the endpoint's others; a chat
-- alert's row keeps only the webhook's origin, and the sender unseals the URL when it posts.
ALTER TABLE meta_events DROP CONSTRAINT IF EXISTS meta_events_target_check;
ALTER TABLE meta_events ADD CONSTRAINT meta_events_target_check CHECK (target IN ('endpoint', 'project', 'slack', 'teams'));
