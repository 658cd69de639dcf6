"""Helpers for testing code that uses unionfs (and unionfs itself): fault injection."""
