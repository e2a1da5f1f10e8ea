"""params.yaml, by concern: `schema` (the typed schema; no torch, no registry), `resolve` (setups,
the matrix and each run's config) and `checks` (names, devices, files and shapes, and
`load_params`, which every stage starts with)."""
