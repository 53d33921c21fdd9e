"""The load benchmark of POST /mutate: `make bench` runs bench/run.py."""
