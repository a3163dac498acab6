"""The advisor's defaults: pghero's thresholds (lib/pghero.rb and lib/pghero/methods/*.rb of
ankane/pghero) and dexter's (lib/dexter/indexer.rb of ankane/dexter), so its findings match
what those tools would report on the same database."""

from __future__ import annotations

SLOW_QUERY_MS = 20.0
"""pghero `slow_query_ms`: a statement is slow when its mean execution time is at least this..."""
SLOW_QUERY_CALLS = 100
"""...and it ran at least this often (pghero `slow_query_calls`)."""

UNUSED_INDEX_MAX_SCANS = 50
"""pghero `unused_indexes(max_scans: 50)`: a non-unique index scanned at most this often since
the statistics were reset is unused (unique and primary keys enforce something: never)."""

CACHE_HIT_RATE_THRESHOLD = 0.99
"""pghero `cache_hit_rate_threshold` (99%): below it, the working set does not fit in memory."""

SEQUENCE_DANGER = 0.9
"""pghero `sequence_danger(threshold: 0.9)`: a sequence past 90% of its column's maximum."""

TRANSACTION_ID_WRAPAROUND = 2_146_483_648
"""pghero `transaction_id_danger`: about 2^31 less the 1,000,000 transactions PostgreSQL keeps
in reserve; at this age the server stops assigning transaction ids."""
TRANSACTION_ID_DANGER = 10_000_000
"""pghero warns when fewer than this many transactions are left before that shutdown."""

INDEX_MIN_COST_SAVINGS = 0.5
"""dexter `--min-cost-savings-pct 50` (the issue's bar): keep a hypothetical index only when it
at least halves the statement's plan cost."""
INDEX_MIN_STATEMENT_COST = 100.0
"""dexter `Query#high_cost?`: statements whose plan costs less are not worth an index."""
INDEX_MIN_TWO_COLUMN_COST = 100.0
"""dexter sets a higher bar for two-column indexes: the single-column cost must stay above
this for a second column to be worth it."""
INDEX_ADVICE_STATEMENTS = 50
"""The statements (by total execution time) the index advisor considers: pghero's suggested
indexes look at its top 100; 50 keep the advice within a request's time."""
INDEX_ADVICE_BUDGET_S = 6.0
"""The index advisor stops explaining further statements after this long (a request has 10 s)."""
PLANNING_TIMEOUT_MS = 5000
"""statement_timeout of each PREPARE, EXPLAIN and EXPLAIN ANALYZE the advisor runs."""

MAX_LIST = 100
"""Every list of the report takes `first` up to this (they are ranked, bounded reports)."""
DEFAULT_LIST = 20
