"""The cloud reasoning server: wire protocol v1 (docs/protocol.md) over ZeroMQ.

    worker_protocol.py  broker <-> worker frames and the named timeouts (zguide MDP.py)
    backend.py          Backend interface; TeacherBackend (the AV-LM teacher), JPEG decoding
    server.py           Server: frontend ROUTER, bounded queue, batching, deadlines, drain
    broker.py           WorkerPool: backend ROUTER, READY/heartbeats/expiry, LRU dispatch
    worker.py           Worker: DEALER to the broker, model thread, reconnect with backoff
    security.py         CurveZMQ policy, ZAP allow-lists, key files
    stats.py            counters behind the 'stats' message
    verbs.py            earshot serve / worker / keys

How to run it: docs/serving.md. The client library is edge/client.py.
"""
