"""Query limits: what one HTTP request may ask for, per role, checked before anything runs."""
