"""Helpers shared by the tests (builders, oracles); no tests here."""
