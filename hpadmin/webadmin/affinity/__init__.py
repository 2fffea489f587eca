"""Affinity pages: groups and labels, their lists, pages and dialogs, and what the VM and host pages show of them."""
