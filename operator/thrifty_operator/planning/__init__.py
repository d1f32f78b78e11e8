"""The reconciler's pure core: read → plan → write, with the planning here and no I/O.

The handler reads the OptimizedModel, its children and (on timer passes) the load and the namespace's
budgets into `observed`; `plan.plan` runs the phases in order — `convert`, `measure`, `selection`,
`scale`, `serve` — and returns the children to create or apply, the typed status and the Events; the handler
writes them. Level-based: every call recomputes everything from what exists now, so a restarted operator
continues where the previous one stopped.
"""
