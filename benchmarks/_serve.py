"""``optillm serve``'s app under uvicorn, for the scale section: ``python -m benchmarks._serve``."""

from __future__ import annotations as _annotations

import argparse

from benchmarks._logs import quiet_logs

__all__ = ("main",)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="fake-model")
    options = parser.parse_args()
    quiet_logs()

    import importlib

    import uvicorn

    from benchmarks._clients import router_client

    server = importlib.import_module("optillm_server")
    client = router_client(options.upstream, model=options.model)
    upstream = server.Upstream(options.upstream, "x")
    app = server.create_app(client=client, model=options.model, upstream=upstream, close_client=True)
    if hasattr(server, "serve"):
        server.serve(app, host="127.0.0.1", port=options.port, access_log=False)
    else:
        uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
