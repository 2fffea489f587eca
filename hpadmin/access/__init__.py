"""Who may do what: roles granted to users or groups on the system, a cluster or a VM, inherited downwards."""
