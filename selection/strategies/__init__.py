"""Built-in selection strategies (resolved lazily through :mod:`selection.registry`)."""
