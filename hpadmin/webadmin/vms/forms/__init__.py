"""Forms of the VM pages: the New/Edit dialog, the NUMA pinning editor, the Migrate dialog and list filters."""
