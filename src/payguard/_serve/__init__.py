"""``payguard serve``: the guard as an HTTP sidecar, for payment engines not written in Python.

- ``options.py``  what the command was started with; the guard each worker builds
- ``service.py``  what each endpoint does, without HTTP (status, body, the log line)
- ``app.py``      the Starlette app: routes, JSON, one log line per request
- ``metrics.py``  the Prometheus metrics (one registry, or multiprocess with several workers)
- ``logs.py``     the JSON request log on stderr (payguard's own structlog logger)
- ``openapi.py``  the OpenAPI document
- ``runner.py``   uvicorn, the workers' supervisor, signals
- ``command.py``  the click command (imports the rest only when it runs: the extra may be missing)
"""
