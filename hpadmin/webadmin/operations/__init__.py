"""Pages of migration jobs and events."""
