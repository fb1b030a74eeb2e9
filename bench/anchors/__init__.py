"""Services the benchmark runs beside gridsvc, measured in the same run (bench/bench_overhead.py):

- :mod:`bench.anchors.floor`: gridsvc's own WSGI application with two trivial views added
  (``/bench/floor/`` through the whole middleware stack; ``/bench/floor-auth/`` the same as a
  DRF view with the JWT authentication): the floor a Django request costs on that server;
- :mod:`bench.anchors.app`: "what a user would pick instead" — Starlette + asyncpg doing the
  same JWT check, user + device + scope query and chain SQL as ``GET /api/v1/chain/``.
"""
