"""Entry point `flet build` packages (Android, iOS, desktop): the same app as `python -m client`."""

from client.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
