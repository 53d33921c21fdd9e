"""Tests of the Helm chart, the container image definition and the helm fetch script."""
