"""The subscription root: live events over graphql-transport-ws on `/graphql`."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from db.repositories.alerts import AlertRecord
from resolvers import subscriptions
from schema.alerts import Alert


@strawberry.type
class Subscription:
    alerts: AsyncGenerator[AlertRecord, None] = strawberry.subscription(
        resolver=subscriptions.alerts,
        graphql_type=Alert,
        description="Your alerts as they are made (needs a user: connection_init's payload "
        '`{"Authorization": "Bearer <access token or API key>"}`). Every alert is sent once '
        "per subscription, oldest first. To catch up after a reconnect, subscribe with "
        "`after` set to the last alert received (what was made since comes first), or read "
        "`me { alerts }` (newest first, paged with `after:` cursors) back to that alert: "
        "nothing is lost. The socket closes (4403) when its access token expires or its API "
        "key is revoked.",
    )
