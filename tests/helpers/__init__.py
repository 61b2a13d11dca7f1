"""Helpers shared by test modules: plain functions and constants, no fixtures.

Fixtures live in conftest.py files; a test module imports helpers from here (or from
tests/factories.py, tests/filesystems.py, tests/integration/kafka_tools.py), never from another
test module or a conftest (tests/test_test_layout.py checks).
"""
