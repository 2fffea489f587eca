"""The administration portal: the pages an admin uses in a browser, per domain app.

Views here parse the request, call a service and render what the models say; the logic lives in the domain
apps and the scheduler below (see docs/architecture.md).
"""
