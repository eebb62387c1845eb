"""Start the chat UI: `python app.py [--host 127.0.0.1] [--port 7860] [--auth user:password]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import assistant  # noqa: E402,F401  (sets the offline and no-telemetry variables before gradio loads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The co-production assistant's chat UI.")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; any other address needs --auth)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860)")
    parser.add_argument("--auth", default=None, help="require a login, user:password (or set ASSISTANT_AUTH)")
    args = parser.parse_args(argv)
    from assistant.faces.ui import launch

    launch(host=args.host, port=args.port, auth=args.auth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
