-- Cost per webhook (issue 15). A delivery's row is inserted and, moments later, updated with its
-- outcome. At fillfactor 70 (013_cost) about a quarter of those updates found no room left on
-- the row's page, so they were not HOT: the new version went to another page with a new entry
-- in each of the table's four indexes. Half of each new page is now kept for the updates:
-- `npm run bench -- --wal-records` measured every outcome's update HOT, WAL 2,116–2,134 →
-- 1,978–1,982 B a webhook, and the table with its indexes 528 → 546 B a delivery on disk
-- (the heap +10 %, its indexes −7 %). Only new pages are affected: no rewrite, a brief lock.
ALTER TABLE deliveries SET (fillfactor = 50);
