"""``python -m regctl``."""

from regctl.cli.app import main

if __name__ == "__main__":
    raise SystemExit(main())
