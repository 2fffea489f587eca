"""Views of the VM, template and pool pages, one module per page or dialog."""
