"""End-to-end tests: the real service driven like the kube-apiserver drives it (see README.md)."""
