"""Reading the user's configuration: every key's rule, Hydra's own errors in one line, resolvers."""
