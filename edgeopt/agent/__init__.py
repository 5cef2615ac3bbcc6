"""edgeopt.agent: the device agent, an HTTP service on a board (`edgeopt agent serve`).

It measures artifacts with the same worker the host uses (benchmarks.isolation.run_isolated), so a remote
device profile gives the same Measurement as a local one, and it serves one deployed artifact on /predict with
Prometheus /metrics. It never imports torch or code an artifact names: a board runs ONNX Runtime / OpenVINO.

    server.py    the FastAPI app: health, info, uploads, measure, deploy, predict, metrics
    store.py     the content-addressed artifact and inputs store (hashes verified, names contained)
    serving.py   the deployed model and its Prometheus metrics
    security.py  bearer token, bind policy, request size limits
    client.py    the host side: upload, measure (a remote profile's transport), deploy, predict
"""
