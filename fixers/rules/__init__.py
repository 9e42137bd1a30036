"""One module per fixer; discovered by `fixers.registry`."""
