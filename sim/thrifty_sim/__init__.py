"""Cost simulator: replays a request trace against Thrifty's policy and baseline autoscalers.

Thrifty runs through the operator's own timer pass (`thrifty_operator.planning.scale.decide`, with the
status written and read back between decisions: `scaler`), and the simulator reads the operator's pool
catalogue format (`thrifty_api.pools`). Run it as
`thrifty-sim --trace FILE --out DIR`; `make bench-cost` runs the benchmark scenarios on the trace and
capacity profile in the package's data (`thrifty_sim/data`).
"""
