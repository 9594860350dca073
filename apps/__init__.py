"""rnnkit applications, one package each; every one is a small layer on the core."""
