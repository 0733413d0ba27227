"""Generators of the tables in README.md and docs/ (one writer for all of them)."""
