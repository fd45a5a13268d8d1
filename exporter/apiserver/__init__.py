"""An in-memory Kubernetes API server speaking the real list/watch wire protocol.

Used by the tests, the demo and the benchmarks; never by the exporter itself.
"""

from exporter.kube.selectors import LabelSelector, SelectorError, parse_field_selector, parse_label_selector

from .server import KubeApiTestServer
from .store import RESOURCES, ApiServerStatusError, ListResult, Store, StoredObject, Watch

__all__ = [
    "RESOURCES",
    "ApiServerStatusError",
    "KubeApiTestServer",
    "LabelSelector",
    "ListResult",
    "SelectorError",
    "Store",
    "StoredObject",
    "Watch",
    "parse_field_selector",
    "parse_label_selector",
]
