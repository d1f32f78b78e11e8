"""Cost simulator: replays a request trace against Thrifty's policy and baseline autoscalers.

It runs the operator's pure cost core (`thrifty_operator.cost`, the same `policy.decide` the operator
calls) and reads the operator's pool catalogue format (`thrifty_api.pools`). Run it as
`thrifty-sim --trace FILE --out DIR`; `make bench-cost` runs the benchmark scenarios on the trace and
capacity profile in the package's data (`thrifty_sim/data`).
"""
