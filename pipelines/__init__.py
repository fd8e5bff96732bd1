"""Kubeflow pipelines assembled from the components; compiled YAML under pipelines/compiled/."""
