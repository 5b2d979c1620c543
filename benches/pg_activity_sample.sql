-- Samples pg_stat_activity for serve's pool backends (application_name scmarket-ws) on the
-- store_admission bench's databases every 3-5 ms for about 20-30 s, then says whether the sampler
-- paused and how many backends were active at once. Run it while the bench runs:
--   psql -h 127.0.0.1 -U postgres -d postgres -q -f benches/pg_activity_sample.sql &
--   cargo bench --bench store_admission -- --rounds 4 --sessions 2000 --show-slowest 4
CREATE TEMP TABLE s (t timestamptz, active int, waiting text);
DO $$
BEGIN
  FOR i IN 1..6000 LOOP
    PERFORM pg_stat_clear_snapshot();
    INSERT INTO s SELECT clock_timestamp(), count(*) FILTER (WHERE state = 'active'),
        string_agg(DISTINCT wait_event, ',') FILTER (WHERE state = 'active')
      FROM pg_stat_activity WHERE application_name = 'scmarket-ws' AND datname LIKE 'scmarket_ws_bench_%';
    PERFORM pg_sleep(0.003);
  END LOOP;
END $$;
WITH g AS (SELECT t, active, waiting, t - lag(t) OVER (ORDER BY t) AS gap FROM s)
SELECT 'sampler gaps > 50 ms' AS what, count(*)::text AS n, max(gap)::text AS worst FROM g WHERE gap > interval '50 ms'
UNION ALL SELECT 'samples with >= 8 active', count(*)::text, max(active)::text FROM g WHERE active >= 8
UNION ALL SELECT 'samples total', count(*)::text, '' FROM g;
WITH g AS (SELECT t, active, sum(CASE WHEN active >= 8 THEN 0 ELSE 1 END) OVER (ORDER BY t) AS grp FROM s)
SELECT min(t)::time, max(t) - min(t) AS run_with_8plus_active, count(*) FROM g WHERE active >= 8 GROUP BY grp ORDER BY 2 DESC LIMIT 5;
