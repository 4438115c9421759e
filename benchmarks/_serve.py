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

    from benchmarks._clients import router_client
    from optillm_server import Upstream, create_app, serve

    client = router_client(options.upstream, model=options.model)
    app = create_app(client=client, model=options.model, upstream=Upstream(options.upstream, "x"), close_client=True)
    serve(app, host="127.0.0.1", port=options.port, access_log=False)


if __name__ == "__main__":
    main()
