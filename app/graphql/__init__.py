"""The GraphQL engine around Strawberry: compiled plans (plan.py, run.py, executor.py) and
per-role query limits."""
