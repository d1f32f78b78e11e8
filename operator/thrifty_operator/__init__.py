"""Thrifty: a Kubernetes operator for cost-controlled, automatically optimized model deployments."""
