"""Earth-observation services for Kubeflow Pipelines."""

__version__ = "0.1.0"
