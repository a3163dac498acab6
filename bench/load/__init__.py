"""Load tests and the capacity report (issue 18): Locust profiles (`locustfile.py`) and the
step-load runner (`run.py`, `bench/load/run`)."""
