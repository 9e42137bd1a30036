"""kube-remedy: turns Kubernetes security findings into reviewed GitOps merge requests."""

__version__ = "0.1.0"
