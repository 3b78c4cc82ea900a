"""An in-process stand-in for the Dapr sidecar's Jobs API, built from the SDK's own gRPC stubs.

``RecordingSidecar`` serves ``dapr.proto.runtime.v1.Dapr`` on a local port and records every
ScheduleJob / DeleteJob request it gets (stable or Alpha1 names); an HTTP health endpoint beside
it answers the check ``DaprClient()`` makes before its first call.
"""

from __future__ import annotations

import json
import threading
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc, jobs_pb2
from google.protobuf.wrappers_pb2 import StringValue


@dataclass(frozen=True)
class JobCall:
    rpc: str  # "ScheduleJob", "ScheduleJobAlpha1", "DeleteJob", "DeleteJobAlpha1"
    name: str
    due_time: str = ""
    overwrite: bool = False
    data: dict | None = None


def _unpack(any_message) -> dict | None:
    if not any_message.type_url:
        return None
    text = StringValue()
    if not any_message.Unpack(text):
        raise AssertionError(f"job data is not a StringValue: {any_message.type_url}")
    return json.loads(text.value)


class RecordingServicer(dapr_pb2_grpc.DaprServicer):
    """Records job requests. ``stable=False`` plays a sidecar that predates the stable Jobs
    API (only the Alpha1 methods exist). ``failures`` calls fail with UNAVAILABLE first."""

    def __init__(self, *, stable: bool = True):
        self.stable = stable
        self.calls: list[JobCall] = []
        self.failures = 0
        self.jobs_gone = False  # DeleteJob answers NOT_FOUND, as for a job that already ran
        self._lock = threading.Lock()

    def _fail_if_asked(self, context) -> None:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "sidecar busy")

    def _schedule(self, rpc, request, context):
        self._fail_if_asked(context)
        job = request.job
        with self._lock:
            self.calls.append(
                JobCall(
                    rpc=rpc,
                    name=job.name,
                    due_time=job.due_time,
                    overwrite=request.overwrite,
                    data=_unpack(job.data),
                )
            )
        return jobs_pb2.ScheduleJobResponse()

    def _delete(self, rpc, request, context):
        self._fail_if_asked(context)
        with self._lock:
            self.calls.append(JobCall(rpc=rpc, name=request.name))
        if self.jobs_gone:
            context.abort(grpc.StatusCode.NOT_FOUND, "job not found")
        return jobs_pb2.DeleteJobResponse()

    def ScheduleJob(self, request, context):
        if not self.stable:
            return super().ScheduleJob(request, context)
        return self._schedule("ScheduleJob", request, context)

    def ScheduleJobAlpha1(self, request, context):
        return self._schedule("ScheduleJobAlpha1", request, context)

    def DeleteJob(self, request, context):
        if not self.stable:
            return super().DeleteJob(request, context)
        return self._delete("DeleteJob", request, context)

    def DeleteJobAlpha1(self, request, context):
        return self._delete("DeleteJobAlpha1", request, context)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(204 if self.path == "/v1.0/healthz/outbound" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


class RecordingSidecar:
    def __init__(self, *, stable: bool = True):
        self.servicer = RecordingServicer(stable=stable)
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        dapr_pb2_grpc.add_DaprServicer_to_server(self.servicer, self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def calls(self) -> list[JobCall]:
        return list(self.servicer.calls)

    def start(self) -> RecordingSidecar:
        self._grpc.start()
        self._http_thread.start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=None)
        self._http.shutdown()
        self._http.server_close()
