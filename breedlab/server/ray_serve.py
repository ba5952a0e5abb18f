"""``breedlab serve --ray --replicas N``: the same ``create_app`` on Ray Serve, N readers and one writer.

    HTTP -> Serve proxy -> BreedlabReplica x N   routes, generates, /metrics, dashboard (reads the registry)
                               |  admin + feedback requests, shadow/canary jobs, detector counts
                               v
                           BreedlabWriter x 1    the only process that writes the registry

Every replica builds its app on its own node (``__serve_build_asgi_app__``: nothing is pickled but the
home's path and the config) and loads its own models. A promotion made through any replica is written
by the writer, and every replica sees it on its next request (the event log's head moved). /metrics and
the dashboard are the answering replica's: the ``x-breedlab-replica`` header and ``breedlab_replica_info``
say which, and Prometheus sums the series per replica.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ray import serve

from breedlab.server.config import ServerConfig

WRITER_CONFIG = {"replica": "writer"}


@serve.deployment(num_replicas=1)
class BreedlabWriter:
    """The one writer: a whole server (``create_app``), driven in-process, that answers forwarded work.

    Starlette's TestClient runs the app's lifespan (the state loads, the background threads start) and
    takes each forwarded request; redirects are not followed and headers go back as a list, so the
    replica returns what the app answered."""

    def __init__(self, home_root: str, config: ServerConfig):
        from starlette.testclient import TestClient

        from breedlab.server.app import create_app

        self.app = create_app(home_root, replace(config, **WRITER_CONFIG))
        self.client = TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)
        self.client.__enter__()

    @property
    def state(self):
        return self.app.state.breedlab

    def request(self, method: str, path: str, query: str, headers: list, body: bytes) -> tuple:
        url = path + (f"?{query}" if query else "")
        answer = self.client.request(method, url, headers=headers, content=body)
        return answer.status_code, list(answer.headers.multi_items()), answer.content

    def score(self, job) -> None:
        # the writer serves no generation, so nothing else brings its rollouts up to date: a stage changed
        # by the CLI or another process would otherwise drop every job sent here
        self.state.refresh_if_changed()
        self.state.rollouts.submit(job)

    def logged(self) -> None:
        if self.state.detector is not None:
            self.state.detector.logged()

    def fallback(self, model_id: str, reason: str) -> None:
        self.state.host._record_fallback(model_id, reason)

    def __del__(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.__exit__(None, None, None)


@serve.deployment(ray_actor_options={"num_cpus": 1})
@serve.ingress()
class BreedlabReplica:
    def __init__(self, home_root: str, config: ServerConfig, writer: Any):
        self.home_root, self.config, self.writer = home_root, config, writer

    def __serve_build_asgi_app__(self):
        from breedlab.server.app import create_app

        replica = serve.get_replica_context().replica_id.unique_id
        config = replace(self.config, replica=replica, writes=False, auto_breed=False)
        return create_app(self.home_root, config, writer=self.writer)


def deploy(home_root: str, config: ServerConfig, replicas: int, *, cpus_per_replica: float = 1.0,
           writer_cpus: float = 0.5) -> None:
    """Start Serve's HTTP proxy on ``config.host:config.port`` and deploy the writer and the replicas.
    The writer reserves CPU too: it scores shadow and canary jobs and runs the detector."""
    serve.start(http_options={"host": config.host, "port": config.port})
    writer = BreedlabWriter.options(ray_actor_options={"num_cpus": writer_cpus}).bind(home_root, config)
    app = BreedlabReplica.options(num_replicas=replicas, ray_actor_options={"num_cpus": cpus_per_replica}) \
        .bind(home_root, config, writer)
    serve.run(app, name="breedlab", route_prefix="/", blocking=False)
