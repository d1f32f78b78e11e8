"""Pure cost core: prices, spend accounting, budgets, Triton metrics and the scaling policy.

Nothing here imports kopf or kubernetes; the operator adapts its CRD models to these dataclasses.
Public modules: `pricing`, `budgets`, `metrics`, `queueing`, `policy`.
"""
