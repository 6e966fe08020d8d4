-- Cost per webhook (issue 15): first attempts sent by the process that ingested them, without a
-- pg-boss job (dispatch/handoff.ts). A row lists the deliveries one ingest transaction handed to
-- its own process's dispatcher, and is written in that transaction: while the row exists and its
-- lease is current, that process holds them. The dispatcher deletes the row in the transaction
-- that records the last of them, and renews the lease of the rows it holds; a row whose lease ran
-- out (the process died) is turned into pg-boss jobs for the deliveries still waiting for their
-- first attempt, by any dispatcher.
--
-- No index but the key: rows live for milliseconds, the table stays a page or two, and the sweep
-- for run-out leases reads it whole.
CREATE TABLE handoffs (
  id uuid PRIMARY KEY,
  deliveries uuid[] NOT NULL,
  lease_until timestamptz NOT NULL
);
