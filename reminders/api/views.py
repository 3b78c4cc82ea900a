"""The user's notification inbox: thin views over ``reminders.services`` and ``selectors``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from reminders import selectors, services
from reminders.api.serializers import (
    NotificationListQuerySerializer,
    NotificationPageSerializer,
    NotificationSerializer,
)
from reminders.representation import notification_to_dict
from tasks.api.base import ThrottledView
from tasks.api.params import parse_query
from tasks.api.throttles import LIST

ERROR_RESPONSES = {
    400: OpenApiResponse(description="Invalid input: `error.code`, `error.fields[]`."),
    401: OpenApiResponse(description="Missing, invalid or expired token."),
    404: OpenApiResponse(description="No such notification for this user."),
    429: OpenApiResponse(description="Rate limited; see `Retry-After`."),
}


class NotificationListView(ThrottledView):
    read_budget = LIST

    @extend_schema(
        operation_id="notifications_list",
        parameters=[NotificationListQuerySerializer],
        responses={200: NotificationPageSerializer, **ERROR_RESPONSES},
        description="The caller's inbox, newest first; dismissed notifications are left out.",
    )
    def get(self, request: Request) -> Response:
        params = parse_query(request.query_params, NotificationListQuerySerializer)
        page = selectors.notification_list_for_user(
            user_id=request.user.id,
            unread=params["unread"],
            limit=params["limit"],
            offset=params["offset"],
        )
        return Response(
            {
                "count": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "results": [notification_to_dict(n) for n in page.notifications],
            }
        )


class NotificationReadView(ThrottledView):
    @extend_schema(
        operation_id="notifications_read",
        request=None,
        responses={200: NotificationSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request, notification_id: int) -> Response:
        notification = services.notification_mark_read(
            user_id=request.user.id, notification_id=notification_id
        )
        return Response(notification_to_dict(notification))


class NotificationDismissView(ThrottledView):
    @extend_schema(
        operation_id="notifications_dismiss",
        request=None,
        responses={200: NotificationSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request, notification_id: int) -> Response:
        notification = services.notification_dismiss(
            user_id=request.user.id, notification_id=notification_id
        )
        return Response(notification_to_dict(notification))
