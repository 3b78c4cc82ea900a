"""An in-process stand-in for a Dapr sidecar, for tests and benchmarks.

No Dapr runtime can run on the development machines, so the Dapr adapters are exercised against
this: a real gRPC server built from the SDK's own ``DaprServicer`` stubs (the wire protocol the SDK
speaks to ``daprd``), plus the HTTP health endpoint ``DaprClient()`` waits for. It implements what
the app uses, the way Dapr with Kafka behaves:

- ``PublishEvent`` / ``BulkPublishEvent``: a CloudEvent per message, its id from the
  ``cloudevent.id`` metadata, its partition from ``partitionKey``; per-entry failures on request.
- ``SubscribeTopicEventsAlpha1`` (streaming subscriptions): subscribers with the same
  ``consumerID`` share a consumer group, others each get every message; a new group starts at the
  oldest message; one partition's messages go one at a time and in order. Answers: SUCCESS acks,
  RETRY redelivers (then dead-letters after ``max_redeliveries``), DROP forwards the message to the
  subscription's dead-letter topic. A subscriber that disconnects with a message in hand gets it
  redelivered (to whoever holds the partition next).

- ``ScheduleJob`` / ``DeleteJob`` / ``GetJob`` (stable and Alpha1 names): the Jobs API, holding
  the jobs; ``trigger_job`` calls the app back as daprd does when a job is due:
  ``POST <app_url>/job/<name>`` with the job's data and the app token.
- Tokens, as daprd with ``dapr.io/api-token-secret`` and ``dapr.io/app-token-secret``: with
  ``api_token``, every gRPC call without that ``dapr-api-token`` is refused UNAUTHENTICATED (the
  health endpoint stays open, as daprd's does); with ``app_token``, every call to the app carries
  it as ``dapr-api-token``.

Faults for tests: ``fail_next_publishes`` (the sidecar answers UNAVAILABLE), ``refuse_entries``
(bulk entries reported failed), ``hold_publishes`` (a publish is accepted and delivered, then the
answer is held back: the publisher cannot tell it succeeded), ``duplicate_deliveries`` (every
subscriber of a group receives each message at the same time, as after a Kafka rebalance).
"""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import logging
import threading
import time
import uuid
import zlib
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import grpc
from dapr.proto import api_service_v1, api_v1, appcallback_v1
from dapr.proto.runtime.v1 import jobs_pb2
from google.protobuf import empty_pb2, json_format

logger = logging.getLogger(__name__)

SUCCESS = appcallback_v1.TopicEventResponse.TopicEventResponseStatus.SUCCESS
RETRY = appcallback_v1.TopicEventResponse.TopicEventResponseStatus.RETRY
DROP = appcallback_v1.TopicEventResponse.TopicEventResponseStatus.DROP
STATUS_NAMES = {SUCCESS: "success", RETRY: "retry", DROP: "drop"}


@dataclass
class Message:
    id: str
    topic: str
    pubsub_name: str
    data: bytes
    content_type: str
    metadata: dict[str, str]
    partition_key: str
    cloudevent_type: str
    source: str
    offset: int = 0
    attempts: int = 0
    not_before: float = 0.0


@dataclass(frozen=True)
class Answer:
    group: str
    message_id: str
    status: str
    stream_id: int


class _Stream:
    _ids = itertools.count(1)

    def __init__(self, group: str, topic: str, dead_letter_topic: str):
        self.id = next(self._ids)
        self.group = group
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.outbox: deque[Message] = deque()
        self.open = True


@dataclass
class _InFlight:
    message: Message
    waiting: set[int]
    answers: list[int] = field(default_factory=list)


@dataclass
class _Group:
    name: str
    topic: str
    streams: list[_Stream] = field(default_factory=list)
    partitions: dict[int, deque[Message]] = field(default_factory=dict)
    in_flight: dict[int, _InFlight] = field(default_factory=dict)


class InProcessDaprSidecar:
    def __init__(
        self,
        *,
        partitions: int = 8,
        max_redeliveries: int = 3,
        redelivery_delay: float = 0.05,
        duplicate_deliveries: bool = False,
        api_token: str = "",
        app_token: str = "",
        app_url: str = "",
    ):
        self.api_token = api_token
        self.app_token = app_token
        self.app_url = app_url.rstrip("/")
        self.jobs: dict[str, jobs_pb2.Job] = {}
        self.refused_calls: list[str] = []  # gRPC methods refused for a missing or wrong token
        self.partitions = partitions
        self.max_redeliveries = max_redeliveries
        self.redelivery_delay = redelivery_delay
        self.duplicate_deliveries = duplicate_deliveries
        self._cv = threading.Condition()
        self._log: dict[str, list[Message]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._stopped = threading.Event()
        self.answers: list[Answer] = []
        self.dead_lettered: list[tuple[str, Message, str]] = []
        self.publish_calls: list[tuple[str, str, int]] = []  # (rpc, topic, entries)
        self._fail_publishes = 0
        self._refused: set[str] = set()
        self._hold = threading.Event()
        self._release = threading.Event()
        self.publish_held = threading.Event()
        self._server: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.grpc_port = 0
        self.http_port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> InProcessDaprSidecar:
        interceptors = [_TokenCheck(self)] if self.api_token else []
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=64), interceptors=interceptors
        )
        api_service_v1.add_DaprServicer_to_server(_Servicer(self), self._server)
        self.grpc_port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        for target, name in ((self._http.serve_forever, "health"), (self._dispatch, "dispatch")):
            thread = threading.Thread(target=target, name=f"dapr-sidecar-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._release.set()
        with self._cv:
            self._cv.notify_all()
        if self._server is not None:
            self._server.stop(grace=0.5).wait()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> InProcessDaprSidecar:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def environ(self) -> dict[str, str]:
        """The SDK variables that point a ``DaprClient()`` here (the token is the app's to
        bring: daprd's injector does not give it to the app container)."""
        return {
            "DAPR_GRPC_ENDPOINT": self.grpc_endpoint,
            "DAPR_HTTP_ENDPOINT": self.http_endpoint,
            "DAPR_HEALTH_TIMEOUT": "5",
        }

    # -- jobs -----------------------------------------------------------------------------------

    def trigger_job(self, name: str, *, timeout: float = 10.0) -> tuple[int, bytes]:
        """Call the app back for job ``name`` as daprd does when it is due: ``POST
        /job/<name>`` with the job's data (a packed ``Any`` in its JSON form) and the app
        token. Returns the app's status and body; a job the app answered 404 is deleted (Dapr
        never retries it)."""
        with self._cv:
            job = self.jobs.get(name)
        if job is None:
            raise KeyError(f"no job named {name!r}")
        if not self.app_url:
            raise RuntimeError("the sidecar has no app_url to call back")
        body = json_format.MessageToJson(job.data).encode() if job.data.type_url else b""
        headers = {"Content-Type": "application/json"}
        if self.app_token:
            headers["dapr-api-token"] = self.app_token
        request = Request(  # noqa: S310 (the app's own local address)
            f"{self.app_url}/job/{name}", data=body, headers=headers, method="POST"
        )
        try:
            with urlopen(request, timeout=timeout) as response:  # noqa: S310
                status, answer = response.status, response.read()
        except HTTPError as refused:
            status, answer = refused.code, refused.read()
        if status == 404:
            with self._cv:
                self.jobs.pop(name, None)
        return status, answer

    # -- faults ---------------------------------------------------------------------------------

    def fail_next_publishes(self, count: int) -> None:
        with self._cv:
            self._fail_publishes = count

    def refuse_entries(self, entry_ids: set[str]) -> None:
        with self._cv:
            self._refused = set(entry_ids)

    def hold_publishes(self) -> None:
        """From now on each publish is delivered, then its answer waits for ``release``."""
        self._release.clear()
        self.publish_held.clear()
        self._hold.set()

    def release(self) -> None:
        self._hold.clear()
        self._release.set()

    # -- inspection -----------------------------------------------------------------------------

    def messages(self, topic: str) -> list[Message]:
        with self._cv:
            return list(self._log.get(topic, []))

    def answered(self, group: str) -> list[Answer]:
        with self._cv:
            return [answer for answer in self.answers if answer.group == group]

    def subscribers(self, group: str, topic: str) -> int:
        with self._cv:
            found = self._groups.get((topic, group))
            return len(found.streams) if found else 0

    def pending(self, group: str, topic: str) -> int:
        """Messages of a group not yet answered for good."""
        with self._cv:
            found = self._groups.get((topic, group))
            if found is None:
                return len(self._log.get(topic, []))
            return sum(len(queue) for queue in found.partitions.values()) + len(found.in_flight)

    def in_flight(self, group: str, topic: str) -> int:
        """Messages of a group delivered and not yet answered."""
        with self._cv:
            found = self._groups.get((topic, group))
            return len(found.in_flight) if found else 0

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # -- publishing -----------------------------------------------------------------------------

    def _check_publish_fault(self, context) -> None:
        with self._cv:
            if self._fail_publishes > 0:
                self._fail_publishes -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "pubsub component unavailable")

    def publish(self, *, pubsub_name, topic, data, content_type, metadata) -> Message:
        metadata = dict(metadata)
        message = Message(
            id=metadata.get("cloudevent.id") or str(uuid.uuid4()),
            topic=topic,
            pubsub_name=pubsub_name,
            data=bytes(data),
            content_type=content_type or "application/json",
            metadata=metadata,
            partition_key=metadata.get("partitionKey", ""),
            cloudevent_type=metadata.get("cloudevent.type", "com.dapr.event.sent"),
            source=metadata.get("cloudevent.source", "in-process-sidecar"),
        )
        with self._cv:
            log = self._log.setdefault(topic, [])
            message.offset = len(log)
            log.append(message)
            for (group_topic, _), group in self._groups.items():
                if group_topic == topic:
                    self._enqueue(group, _copy(message))
            self._cv.notify_all()
        return message

    def _after_publish(self) -> None:
        if self._hold.is_set():
            self.publish_held.set()
            self._release.wait(timeout=60)

    # -- subscriptions --------------------------------------------------------------------------

    def _partition(self, message: Message) -> int:
        if not message.partition_key:
            return message.offset % self.partitions
        return zlib.crc32(message.partition_key.encode()) % self.partitions

    def _enqueue(self, group: _Group, message: Message, *, front: bool = False) -> None:
        queue = group.partitions.setdefault(self._partition(message), deque())
        if front:
            queue.appendleft(message)
        else:
            queue.append(message)

    def _join(self, stream: _Stream) -> None:
        with self._cv:
            key = (stream.topic, stream.group)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(name=stream.group, topic=stream.topic)
                for message in self._log.get(stream.topic, []):
                    self._enqueue(group, _copy(message))
            group.streams.append(stream)
            self._cv.notify_all()

    def _leave(self, stream: _Stream) -> None:
        with self._cv:
            stream.open = False
            group = self._groups.get((stream.topic, stream.group))
            if group is None:
                return
            group.streams = [other for other in group.streams if other is not stream]
            for partition, flight in list(group.in_flight.items()):
                if stream.id in flight.waiting:
                    flight.waiting.discard(stream.id)
                    if not flight.waiting:
                        # Never answered: deliver it again.
                        del group.in_flight[partition]
                        if not flight.answers:
                            self._enqueue(group, flight.message, front=True)
                        else:
                            self._settle(group, flight, stream.dead_letter_topic)
            self._cv.notify_all()

    def _answer(self, stream: _Stream, message_id: str, status: int) -> None:
        with self._cv:
            group = self._groups.get((stream.topic, stream.group))
            if group is None:
                return
            for partition, flight in list(group.in_flight.items()):
                if flight.message.id == message_id and stream.id in flight.waiting:
                    self.answers.append(
                        Answer(group.name, message_id, STATUS_NAMES.get(status, "?"), stream.id)
                    )
                    flight.waiting.discard(stream.id)
                    flight.answers.append(status)
                    if not flight.waiting:
                        del group.in_flight[partition]
                        self._settle(group, flight, stream.dead_letter_topic)
                    self._cv.notify_all()
                    return

    def _settle(self, group: _Group, flight: _InFlight, dead_letter_topic: str) -> None:
        message = flight.message
        if all(status == SUCCESS for status in flight.answers):
            return
        if DROP in flight.answers:
            self._dead_letter(message, dead_letter_topic, "dropped by the subscriber")
            return
        message.attempts += 1
        if message.attempts > self.max_redeliveries:
            self._dead_letter(message, dead_letter_topic, "redeliveries exhausted")
            return
        message.not_before = time.monotonic() + self.redelivery_delay
        self._enqueue(group, message, front=True)

    def _dead_letter(self, message: Message, topic: str, reason: str) -> None:
        self.dead_lettered.append((topic, message, reason))
        if not topic:
            return
        log = self._log.setdefault(topic, [])
        copy = _copy(message)
        copy.topic = topic
        copy.offset = len(log)
        log.append(copy)
        for (group_topic, _), group in self._groups.items():
            if group_topic == topic:
                self._enqueue(group, _copy(copy))

    def _dispatch(self) -> None:
        while not self._stopped.is_set():
            with self._cv:
                now = time.monotonic()
                for group in self._groups.values():
                    streams = [stream for stream in group.streams if stream.open]
                    if not streams:
                        continue
                    for partition, queue in group.partitions.items():
                        if partition in group.in_flight or not queue:
                            continue
                        if queue[0].not_before > now:
                            continue
                        message = queue.popleft()
                        targets = (
                            streams
                            if self.duplicate_deliveries
                            else [streams[partition % len(streams)]]
                        )
                        group.in_flight[partition] = _InFlight(
                            message=message, waiting={stream.id for stream in targets}
                        )
                        for stream in targets:
                            stream.outbox.append(message)
                self._cv.notify_all()
                self._cv.wait(timeout=0.02)

    def _stream_messages(self, stream: _Stream, context):
        while context.is_active() and not self._stopped.is_set():
            with self._cv:
                if not stream.outbox:
                    self._cv.wait(timeout=0.1)
                message = stream.outbox.popleft() if stream.outbox else None
            if message is None:
                continue
            yield api_v1.SubscribeTopicEventsResponseAlpha1(
                event_message=appcallback_v1.TopicEventRequest(
                    id=message.id,
                    source=message.source,
                    type=message.cloudevent_type,
                    spec_version="1.0",
                    data_content_type=message.content_type,
                    data=message.data,
                    topic=stream.topic,
                    pubsub_name=message.pubsub_name,
                )
            )


def _copy(message: Message) -> Message:
    """The message as first published: its own metadata, no delivery attempts."""
    return dataclasses.replace(message, metadata=dict(message.metadata), attempts=0, not_before=0.0)


class _TokenCheck(grpc.ServerInterceptor):
    """daprd's API token check: a call without the configured ``dapr-api-token`` is refused
    before it reaches the API."""

    def __init__(self, sidecar: InProcessDaprSidecar):
        self.sidecar = sidecar
        self._refuse = grpc.unary_unary_rpc_method_handler(self._unauthenticated)
        self._refuse_stream = grpc.stream_stream_rpc_method_handler(self._unauthenticated_stream)

    def _unauthenticated(self, request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid dapr-api-token")

    def _unauthenticated_stream(self, request_iterator, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid dapr-api-token")
        yield  # pragma: no cover (abort raises)

    def intercept_service(self, continuation, handler_call_details):
        given = dict(handler_call_details.invocation_metadata or ()).get("dapr-api-token", "")
        if hmac.compare_digest(str(given).encode(), self.sidecar.api_token.encode()):
            return continuation(handler_call_details)
        method = handler_call_details.method
        with self.sidecar._cv:
            self.sidecar.refused_calls.append(method)
        if "SubscribeTopicEvents" in method:
            return self._refuse_stream
        return self._refuse


class _Servicer(api_service_v1.DaprServicer):
    def __init__(self, sidecar: InProcessDaprSidecar):
        self.sidecar = sidecar

    def ScheduleJob(self, request, context):
        with self.sidecar._cv:
            existing = request.job.name in self.sidecar.jobs
            if existing and not request.overwrite:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "job already exists")
            job = jobs_pb2.Job()
            job.CopyFrom(request.job)
            self.sidecar.jobs[request.job.name] = job
        return jobs_pb2.ScheduleJobResponse()

    def ScheduleJobAlpha1(self, request, context):
        return self.ScheduleJob(request, context)

    def GetJob(self, request, context):
        with self.sidecar._cv:
            job = self.sidecar.jobs.get(request.name)
        if job is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "job not found")
        return jobs_pb2.GetJobResponse(job=job)

    def GetJobAlpha1(self, request, context):
        return self.GetJob(request, context)

    def DeleteJob(self, request, context):
        with self.sidecar._cv:
            found = self.sidecar.jobs.pop(request.name, None)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "job not found")
        return jobs_pb2.DeleteJobResponse()

    def DeleteJobAlpha1(self, request, context):
        return self.DeleteJob(request, context)

    def PublishEvent(self, request, context):
        sidecar = self.sidecar
        sidecar._check_publish_fault(context)
        with sidecar._cv:
            sidecar.publish_calls.append(("PublishEvent", request.topic, 1))
        sidecar.publish(
            pubsub_name=request.pubsub_name,
            topic=request.topic,
            data=request.data,
            content_type=request.data_content_type,
            metadata=request.metadata,
        )
        sidecar._after_publish()
        return empty_pb2.Empty()

    def BulkPublishEvent(self, request, context):
        sidecar = self.sidecar
        sidecar._check_publish_fault(context)
        with sidecar._cv:
            sidecar.publish_calls.append(("BulkPublishEvent", request.topic, len(request.entries)))
            refused = set(sidecar._refused)
        failed = []
        for entry in request.entries:
            if entry.entry_id in refused:
                failed.append(
                    api_v1.BulkPublishResponseFailedEntry(entry_id=entry.entry_id, error="refused")
                )
                continue
            sidecar.publish(
                pubsub_name=request.pubsub_name,
                topic=request.topic,
                data=entry.event,
                content_type=entry.content_type,
                metadata={**dict(request.metadata), **dict(entry.metadata)},
            )
        sidecar._after_publish()
        return api_v1.BulkPublishResponse(failedEntries=failed)

    def BulkPublishEventAlpha1(self, request, context):
        return self.BulkPublishEvent(request, context)

    def SubscribeTopicEventsAlpha1(self, request_iterator, context):
        first = next(request_iterator)
        if first.WhichOneof("subscribe_topic_events_request_type") != "initial_request":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be initial")
        initial = first.initial_request
        group = dict(initial.metadata).get("consumerID") or "default"
        stream = _Stream(group, initial.topic, initial.dead_letter_topic)
        sidecar = self.sidecar

        def read_answers():
            try:
                for request in request_iterator:
                    if (
                        request.WhichOneof("subscribe_topic_events_request_type")
                        == "event_processed"
                    ):
                        processed = request.event_processed
                        sidecar._answer(stream, processed.id, processed.status.status)
            except Exception:
                logger.debug("subscriber %s went away", stream.id, exc_info=True)
            finally:
                sidecar._leave(stream)

        sidecar._join(stream)
        context.add_callback(lambda: sidecar._leave(stream))
        reader = threading.Thread(target=read_answers, name="dapr-sidecar-answers", daemon=True)
        reader.start()
        yield api_v1.SubscribeTopicEventsResponseAlpha1(
            initial_response=api_v1.SubscribeTopicEventsResponseInitialAlpha1()
        )
        yield from sidecar._stream_messages(stream, context)


class _HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/v1.0/healthz"):
            self.send_response(204)
        else:
            self.send_response(404)
        self.end_headers()

    def log_message(self, format, *args):
        pass
