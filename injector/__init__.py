"""sidecar-injector: a Kubernetes admission webhook that injects sidecars from templates."""

__version__ = "0.1.0"
