"""mindx-fault-exporter: MindX DL fault ConfigMaps and Events as Prometheus metrics."""

__version__ = "0.1.0"
