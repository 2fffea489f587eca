"""Pages of clusters and hosts, and the overview."""
