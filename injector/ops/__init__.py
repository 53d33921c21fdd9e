"""Operator commands against a live cluster, all read-only: `check` (is the install healthy?),
`outdated` (which pods run an old template version?) and `explain` (why has this pod no
sidecar?). Fetching lives in `cluster`; deciding in the pure modules next to it."""
