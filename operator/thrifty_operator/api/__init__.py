"""The OptimizedModel API: typed models and the CRD generator."""
