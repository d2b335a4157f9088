"""`llmops-nb serve` and `llmops-nb keys create|list|revoke`: parse, call the service, print."""

from __future__ import annotations

import argparse
import asyncio
import sys

__all__ = ["add_parsers", "keys_main", "serve_main"]


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve", help="serve prompt versions and models as an OpenAI-compatible endpoint"
    )
    p.add_argument(
        "--route", action="append", default=[], metavar="NAME=TARGET",
        help="a route: support=support_reply@production, chat=local/support-ft@production",
    )  # fmt: skip
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--no-auth", action="store_true", help="no API keys (127.0.0.1/localhost only)")
    p.add_argument(
        "--guard", action="append", default=[], metavar="ROUTE=CHECKS",
        help="guardrails for a route's calls, e.g. support=pii,injection",
    )  # fmt: skip
    p.add_argument("--guard-action", default="block", choices=["block", "redact", "flag"])
    p.add_argument("--max-body", type=int, default=None, help="request body limit in bytes (1 MiB)")
    p.add_argument("--project", help="the project whose prompts and models the routes name")
    p.add_argument("--ray", action="store_true", help="serve from Ray Serve replicas")
    p.add_argument("--ray-address", help="the Ray cluster (default: LLMOps.ray_address, local)")
    p.add_argument("--replicas", type=int, default=None, help="Ray Serve replicas (2)")
    p.add_argument(
        "--forward-env", action="append", default=[], metavar="NAME",
        help="with --ray: hand this environment variable to the replicas (OPENAI_API_KEY)",
    )  # fmt: skip
    k = sub.add_parser("keys", help="API keys of the serving endpoint")
    ks = k.add_subparsers(dest="keys_command", required=True)
    ks.add_parser("create", help="make a key; it is printed once").add_argument("name")
    ks.add_parser("list", help="every key: id, name, author, created, revoked")
    ks.add_parser("revoke", help="revoke the active key NAME").add_argument("name")


def _fail(message: str) -> int:
    for line in message.splitlines():
        print(f"error: {line}", file=sys.stderr)
    return 1


def _guards(items: list[str]) -> dict[str, list[str]]:
    from .routes import ServeError

    guards: dict[str, list[str]] = {}
    for item in items:
        route, sep, checks = item.partition("=")
        if not sep or not route or not checks:
            raise ServeError(f"--guard {item!r}: write ROUTE=CHECKS, e.g. support=pii,injection")
        guards.setdefault(route, []).extend(c for c in checks.split(",") if c)
    return guards


def serve_main(args: argparse.Namespace) -> int:
    from ..errors import LLMOpsError
    from .app import DEFAULT_MAX_BODY, ServeApp, ServeOptions, run_forever

    try:
        options = ServeOptions(
            routes=args.route, host=args.host, port=args.port, auth=not args.no_auth,
            guards=_guards(args.guard), guard_action=args.guard_action,
            max_body=args.max_body or DEFAULT_MAX_BODY, project=args.project,
        )  # fmt: skip
        if args.ray:
            from .ray_serve import DEFAULT_REPLICAS, run_on_ray

            replicas = DEFAULT_REPLICAS if args.replicas is None else args.replicas
            announce = lambda line: print(line, flush=True)  # noqa: E731
            run_on_ray(
                options, replicas=replicas, address=args.ray_address,
                forward_env=args.forward_env, announce=announce,
            )  # fmt: skip
            return 0
        if args.replicas is not None or args.ray_address is not None or args.forward_env:
            return _fail("--replicas, --ray-address and --forward-env need --ray")
        app = ServeApp(options)
        asyncio.run(run_forever(app, announce=lambda line: print(line, flush=True)))
    except LLMOpsError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        pass
    return 0


def keys_main(args: argparse.Namespace) -> int:
    from ..errors import LLMOpsError
    from .auth import create_key, list_keys, revoke_key

    try:
        if args.keys_command == "create":
            made = create_key(args.name)
            print(made.key)
            print(
                f"key {made.info.name!r} (id {made.info.key_id}): shown only now, store it safely",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            for info in list_keys():
                revoked = (
                    f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
                )
                created = f"{info.created_at:%Y-%m-%d %H:%M}"
                print(f"{info.key_id}  {info.name}  {info.author}  {created}  {revoked}")
        else:
            info = revoke_key(args.name)
            print(f"revoked key {info.name!r} (id {info.key_id})")
    except LLMOpsError as exc:
        return _fail(str(exc))
    return 0
