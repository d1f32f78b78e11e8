"""Cost simulator: replays a request trace against Thrifty's policy and baseline autoscalers.

Run it as `thrifty-sim --trace FILE --out DIR`; `make bench-cost` runs the benchmark scenarios.
"""
