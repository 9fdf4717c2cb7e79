"""`python -m backend_stub` serves the API (with `SKEET_ROLE=worker`: the workers, as
`python -m backend_stub.worker`); `python -m backend_stub token USER_ID` prints a dev token."""

from __future__ import annotations

import argparse
import logging
import sys

from backend_stub.middleware import RedactQuery
from backend_stub.settings import Settings, SettingsError
from services.auth import devtoken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend_stub", description="Skeet's HTTP API")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API on $HOST:$PORT (the default)")
    token = commands.add_parser("token", help="print a dev token for USER_ID (SKEET_AUTH=local)")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=int, default=devtoken.DEFAULT_TTL_S, help="validity in seconds")
    args = parser.parse_args(argv)
    if args.command == "token":
        try:
            print(devtoken.mint(args.user_id, key=devtoken.dev_key(), ttl_s=args.ttl))
        except ValueError as exc:  # a bad user id, or a weak SKEET_DEV_KEY (devtoken.WeakKey)
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    return serve()


def serve() -> int:
    from backend_stub.app import create_app
    from backend_stub.server import log_lines, run

    log_lines()
    try:
        settings = Settings.from_env()
        if settings.role == "worker":  # the same image and command run the workers (no routes, no tokens)
            from backend_stub.worker import create_worker_app

            app = create_worker_app(settings)
        else:
            settings.check_bind()
            app = create_app(settings)  # builds the token verifier: refuses a weak key, Firebase without credentials
    except SettingsError as exc:
        print(f"backend_stub: {exc}", file=sys.stderr)
        return 2
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(RedactQuery())
    run(app, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
