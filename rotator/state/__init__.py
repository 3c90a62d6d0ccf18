"""Where rotation records and group locks are kept."""
