"""Which model replica a request goes to: `serve.request_router` as a Serve request router, for both engines."""

from __future__ import annotations

from ..config import ServeConfig

# Serve's routers by `serve.request_router` (None: Serve's default, the less busy of two random replicas). The
# session router hashes Serve's session id (the x-session-id header) onto a ring of replicas.
ROUTERS = {
    "session": "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter",
    "power_of_two": None,
    "prefix": "ray.serve.llm.request_router.PrefixCacheAffinityRouter",
}


def request_router_config(cfg: ServeConfig) -> dict:
    """The deployment option that picks ``serve.request_router`` for a model deployment."""
    router = ROUTERS[cfg.request_router]
    return {"request_router_config": {"request_router_class": router}} if router else {}
