"""pytest plugins of the suite, registered with -p in pyproject.toml's addopts."""
