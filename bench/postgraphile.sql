-- Installed into the benchmark database only: the suburb statistics as a PostGraphile computed
-- column (`Locality.stats`), computed the same way as propintel's (percentile_cont over
-- market sales), so Q3 asks both servers for the same work.
DROP FUNCTION IF EXISTS localities_stats(localities);
DROP TYPE IF EXISTS locality_stats_row;
CREATE TYPE locality_stats_row AS (
    sales_count bigint,
    median_price double precision,
    p25_price double precision,
    p75_price double precision,
    median_price_per_m2 double precision
);
CREATE FUNCTION localities_stats(l localities) RETURNS locality_stats_row AS $$
    SELECT count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY price),
           percentile_cont(0.25) WITHIN GROUP (ORDER BY price),
           percentile_cont(0.75) WITHIN GROUP (ORDER BY price),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY price / area_m2) FILTER (WHERE area_m2 > 0)
    FROM sales
    WHERE locality_id = l.id AND is_market_sale
$$ LANGUAGE sql STABLE;

-- propintel's locality indexes are partial (live rows only, `WHERE deleted_at IS NULL`), which
-- PostGraphile's generated SQL cannot use. Give the peer the plain index a PostGraphile user
-- would create for `allProperties(condition: {localityId})`, so the comparison is fair.
CREATE INDEX IF NOT EXISTS bench_properties_locality_id ON properties (locality_id, id);
