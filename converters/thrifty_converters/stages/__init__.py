"""Pipeline stages: each turns one artifact into another and reports ok, skipped or failed."""
