"""Shell completion: the scripts and completers (script), registry lookups (lookup), the cached tree (tree)."""
