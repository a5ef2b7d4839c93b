"""`python -m bench.serve STACK PORT`: one comparison app under uvicorn, with the settings
`calls-api serve` gives the service (one worker, uvloop and httptools when installed)."""

from __future__ import annotations

import sys

import uvicorn

from bench.stacks import APP_MODULES


def main() -> None:
    stack, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(
        f"{APP_MODULES[stack]}:app",
        host="127.0.0.1",
        port=port,
        log_level="info",
        access_log=False,
    )


if __name__ == "__main__":
    main()
