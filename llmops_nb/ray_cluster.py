"""The connection to Ray, for grids and fine-tunes run with `executor="ray"`.

One place decides which cluster a kernel uses (`LLMOps.ray_address`: empty for a local
one this process starts or already has, `auto` for the one running on this machine,
`HOST:PORT` or `ray://HOST:PORT` for a remote head) and turns Ray's failures into one
clear message. Ray is an optional extra and loads only here, on first use.
"""

from __future__ import annotations

import socket
from types import ModuleType
from typing import Any

from . import config
from .errors import LLMOpsError

__all__ = ["RayNotInstalled", "RayUnavailable", "check_fits", "connect"]

PROBE_TIMEOUT_S = 3.0


class RayNotInstalled(LLMOpsError, ImportError):
    """executor='ray' without the `ray` extra."""


class RayUnavailable(LLMOpsError, ConnectionError):
    """The Ray cluster cannot be reached or started, or cannot run what was asked."""


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise RayNotInstalled(
            "executor='ray' needs Ray, which is not installed: pip install 'llmops_nb[ray]'"
        ) from None
    return ray


def connect(address: str | None = None) -> ModuleType:
    """The `ray` module, connected to the cluster ADDRESS names (default LLMOps.ray_address).

    An explicit address is probed first: Ray itself would retry an unreachable one for
    minutes before failing."""
    ray = import_ray()
    address = (config.settings.ray_address if address is None else address).strip()
    if address in ("", "local"):
        if not ray.is_initialized():
            _init(ray, "a local Ray cluster", address="local", include_dashboard=False)
        return ray
    if address != "auto":
        _probe(address)
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address != "auto" and _host_port(address) != _host_port(current):
            raise RayUnavailable(
                f"this kernel is already connected to the Ray cluster at {current!r}: restart "
                f"the kernel to use {address!r}"
            )
        return ray
    _init(ray, f"the Ray cluster at {address!r}", address=address)
    return ray


def check_fits(what: str, *, num_cpus: float, num_gpus: float) -> None:
    """Fail now, not by waiting forever, when no machine of the cluster could run WHAT."""
    import ray

    total = ray.cluster_resources()
    for name, wanted in (("CPU", num_cpus), ("GPU", num_gpus)):
        have = float(total.get(name, 0.0))
        if wanted > have:
            raise RayUnavailable(
                f"{what} asks for {wanted:g} {name}(s), and the Ray cluster has {have:g} in all"
                f"{': lower ray_num_gpus' if name == 'GPU' else ': lower ray_num_cpus'}"
            )


def _init(ray: ModuleType, what: str, **kwargs: Any) -> None:
    try:
        ray.init(log_to_driver=False, **kwargs)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError or plain Exception
        raise RayUnavailable(f"cannot connect to {what}: {_first_line(exc)}") from None


def _probe(address: str) -> None:
    host, port = _host_port(address)
    if port is None:
        raise RayUnavailable(
            f"cannot use the Ray address {address!r}: give HOST:PORT, ray://HOST:PORT or 'auto'"
        )
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnavailable(
            f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}): check "
            "LLMOps.ray_address (`ray start --head` prints it) and that the head node is up"
        ) from None


def _host_port(address: str) -> tuple[str, int | None]:
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return rest, None
    host = host.strip("[]")
    return ("127.0.0.1" if host in ("localhost", "0.0.0.0") else host), int(port)


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.rstrip(".")
