"""The database advisor (issue 15): slow statements, index advice, maintenance; PostgreSQL only."""
