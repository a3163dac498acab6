"""Support code of the test suite: helpers the test modules import (tests/conftest.py holds
the fixtures). Test modules import from here, never from each other or from conftest."""
