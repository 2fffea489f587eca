"""What every hpadmin app shares and no app owns: view and htmx helpers, list pages, template tags, processes.

It sits below every domain app: nothing here imports ``hpadmin.*`` apps (the import contracts in
``pyproject.toml`` keep it so).
"""
