"""``onnx-search serve [RUN_DIR ...]``: the interactive explorer over the live stores and run folders."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..serve.guard import ServeError
from .common import add_store_args, data_dir_of, open_data, session_config


def _runs_and_experiment(args):
    """The run folders to browse (a positional experiment file stands for its run folder, when it ran) and the
    experiment whose stores are served: ``--experiment``, else the first positional unless store flags are given."""
    from ..experiment.locate import is_experiment_file, locate
    from ..serve.runs import RunView

    runs, first = [], None
    for value in args.runs:
        if is_experiment_file(value):
            run_dir = locate(value).run_dir
            if run_dir is not None:
                runs.append(RunView.open(run_dir))
        else:
            runs.append(RunView.open(value))
        first = first or value
    flags = args.data_dir or args.redis_url or args.milvus_uri or args.namespace
    if not args.experiment and first and not flags:
        args.experiment = first
    return runs


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), so the URL printed is the one served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    return sock


def cmd_serve(args) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ServeError(f"the explorer needs its extra: pip install 'onnx-search[serve]' ({exc})") from None

    from ..serve.app import build_app
    from ..serve.explorer import Explorer, open_sessions
    from ..serve.guard import check_bind, is_loopback

    check_bind(args.host, args.token)  # refused before anything is opened
    runs = _runs_and_experiment(args)
    stores, loc = open_data(args)  # the embedded Redis it starts is its own while it serves
    try:
        if loc is not None and loc.run_dir is not None and not runs:
            from ..serve.runs import RunView

            runs = [RunView.open(loc.run_dir)]
        data_dir = data_dir_of(args, loc)
        models_dir = Path(args.models_dir or (loc.models_dir if loc else "models"))
        sessions, unavailable = open_sessions(stores, args.model, models_dir, session_config(args))
        for u in unavailable:
            print(f"not serving {u.model}: {u.reason}; fix: {u.fix}", flush=True)
        ex = Explorer(
            stores,
            sessions,
            data_dir / "explorer",
            runs,
            int(args.max_upload_mb * 1024 * 1024),
            unavailable=unavailable,
            workers=args.workers,
            queue=args.queue,
        )
        sock = bind(args.host, args.port)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/" + (f"?token={args.token}" if args.token else "")
        print(f"onnx-search explorer: {url}  ({', '.join(sessions)}; Ctrl-C stops it)", flush=True)
        app = build_app(ex, args.token, loopback=is_loopback(args.host), blind_names=args.blind_names)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shuts down cleanly on Ctrl-C, then re-raises it
            pass
        print("explorer stopped", flush=True)
    finally:
        stores.close()
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="a local web app: query with any image, every model side by side, maps")
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN_DIR",
        help="run folders (or experiment files) for the disagreement/robustness views; the first one's stores are "
        "served unless --experiment or store flags say otherwise",
    )
    add_store_args(p)
    p.add_argument("--model", action="append", help="serve only these ingested models (repeatable; default: all)")
    p.add_argument("--models-dir", default=None, help="where converted models live (default: the run's, or models)")
    p.add_argument("--providers", default="auto", help="comma list: auto, tensorrt, cuda, cpu (default: auto)")
    p.add_argument("--strict", action="store_true", help="fail when a requested provider does not load")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: one per core)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free one; default 8765)")
    p.add_argument("--token", default=None, help="required of every request (needed for a non-loopback --host)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest query upload accepted (default 20)")
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="uploads embedded at once (default: half the cores; each embedding already uses every core)",
    )
    p.add_argument("--queue", type=int, default=16, help="uploads waiting beyond those; more get 503 (default 16)")
    p.add_argument(
        "--blind-names",
        action="store_true",
        help="judge mode never sends file names or labels, even when the page asks (they are hidden by default)",
    )
    p.set_defaults(func=cmd_serve)
