"""Serving the price model (the model itself is app/ml): `service` holds the active model
of the registry (ModelRegistry), `tasks` the training jobs in a process pool (Trainer)."""
