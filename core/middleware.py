import re
import uuid
from time import perf_counter

from django.http import JsonResponse
from django.middleware.common import CommonMiddleware

from core.errors import error_body
from core.hosts import INTERNAL_HOST, is_internal_path
from core.logging import log_context
from core.metrics import HTTP_REQUEST_DURATION

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _internal_host() -> str:
    return INTERNAL_HOST


class InternalHostMiddleware:
    """First in the chain: a request for an internal endpoint (``core.hosts.is_internal_path``)
    answers to ``INTERNAL_HOST`` whatever its ``Host`` says, so that Django's check (in
    ``CommonMiddleware``, CSRF, any absolute URL) passes for kubelet, Dapr and Prometheus, which
    call by pod address. Every other path keeps the check against ``ALLOWED_HOSTS``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_internal_path(request.path_info):
            request.get_host = _internal_host
        return self.get_response(request)


class RequestIdMiddleware:
    """Give each request an id (or keep a sane one from the proxy) for logs and responses."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class MetricsMiddleware:
    """Request latency by route pattern (never by raw path, which would explode the labels)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        HTTP_REQUEST_DURATION.labels(request.method, route, str(response.status_code)).observe(
            perf_counter() - started
        )
        return response


# Only the REST API: an unrouted /job/ must look like any unknown path.
API_PATH_PREFIX = "/api/"
_JSON_TYPES = ("application/json", "+json")
_BARE_ERRORS = {
    400: ("bad_request", "The request is malformed."),
    403: ("forbidden", "Forbidden."),
    404: ("not_found", "Not found."),
    413: ("too_large", "The body is too large."),
    429: ("throttled", "Too many requests; try again after Retry-After seconds."),
}


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIX)


class ApiCommonMiddleware(CommonMiddleware):
    """Django's ``CommonMiddleware``, except that under the API only GET and HEAD are redirected
    to the path with its trailing slash: a redirected POST loses its body (and with ``DEBUG`` on
    Django raises instead), so other methods get a JSON 404 that names the right path."""

    def process_response(self, request, response):
        if (
            response.status_code == 404
            and request.method not in ("GET", "HEAD")
            and is_api_path(request.path_info)
            and self.should_redirect_with_slash(request)
        ):
            message = (
                f"No endpoint at {request.path}; use {request.path}/ (with the trailing slash)."
            )
            return JsonResponse(error_body("not_found", message), status=404)
        return super().process_response(request, response)


class ApiErrorsMiddleware:
    """Under the API, an error Django answers with a page (its 404 and 500 pages, the ``DEBUG``
    pages, a bare 405 from ``require_POST``) is answered in the API's JSON error shape instead.
    Django has logged it by then (a 500 with its traceback)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        status = response.status_code
        if status < 400 or not is_api_path(request.path_info) or _is_json(response):
            return response
        if status >= 500:
            body = error_body("server_error", "Something went wrong on our side.")
            request_id = getattr(request, "request_id", None)
            if request_id:
                body["error"]["message"] = (
                    f"Something went wrong on our side; the request id is {request_id}."
                )
                body["error"]["request_id"] = request_id
        elif status == 405:
            body = error_body("method_not_allowed", f"Method {request.method} is not allowed here.")
        else:
            code, message = _BARE_ERRORS.get(status, ("error", f"{response.reason_phrase}."))
            body = error_body(code, message)
        answer = JsonResponse(body, status=status)
        for header, value in response.items():
            if header.lower() not in ("content-type", "content-length"):
                answer[header] = value
        return answer


def _is_json(response) -> bool:
    media_type = response.get("Content-Type", "").partition(";")[0].strip().lower()
    return media_type.endswith(_JSON_TYPES)
