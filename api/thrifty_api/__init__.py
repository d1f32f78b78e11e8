"""Thrifty's contract between the operator, the converter Jobs and the simulator: pure pydantic, no I/O.

- `optimized_model`: the OptimizedModel resource (spec and status); the CRD is generated from it (`crdgen`).
- `variants`: the catalogue of variants a converter builds and the operator may select.
- `job_summary`: what a conversion or profiling Job reports in its termination message.
- `report`: `report.json`, the full result of one `thrifty-convert optimize` run.
- `pools`: the pool catalogue (node pools and their prices) the chart mounts and the simulator reads.
"""
