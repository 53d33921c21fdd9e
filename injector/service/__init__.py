"""The admission service: `sidecar-injector serve` (HTTPS /mutate, metrics and health over HTTP)."""
