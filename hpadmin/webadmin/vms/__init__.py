"""Pages of VMs, templates and pools, with their dialogs."""
