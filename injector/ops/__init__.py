"""Operator commands against a live cluster, all read-only: `check` (is the install healthy?),
`outdated` (which pods run an old template version?) and `explain` (why has this pod no
sidecar?). Reading the cluster lives in `kube`, `install` and each command's fetch step;
deciding in pure functions that take what was read."""
