"""Generators of the tables in README.md and docs/: `sections` is the one writer of all of them."""
