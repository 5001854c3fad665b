"""Reading source files, validating and normalising records, enriching them, committing."""
