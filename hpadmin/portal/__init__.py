"""The user portal: a user's VMs as cards with the actions they may take, and Create VM within their quota."""
