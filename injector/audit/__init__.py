"""`sidecar-injector audit`: the fleet's states kept live from a metadata-only list+watch of
pods and namespaces, exported as Prometheus gauges."""
