"""Locust profiles of propintel: what the web app's visitors, signed-in users and an admin send.

    locust -f bench/load/locustfile.py --headless -u 40 -r 20 -t 30s --host http://127.0.0.1:8000

`bench/load/run` starts the server and Locust for each step; run by hand, Locust needs
`PROPINTEL_LOAD_SAMPLE`: a JSON file (`bench/load/sample.py` writes it) of real property and
locality ids and addresses from the database, the signed-in users' access tokens and an admin's.

The mix (per user class, its weight):

* `Visitor` (6): types an address in the search box (a `Suggest` request per pause in typing,
  prefixes of a real address), opens the property page (`Property`, then `PropertyEstimate`
  and `PropertyComparables`, as the page sends them), sometimes the suburb's page (`Locality`,
  `LocalitySeries`: `Locality.stats` three ways and `statsSeries`).
* `SignedIn` (2): the account page (`Me`: saved searches, watches, alerts) with a bearer
  token, and property pages as a signed-in user (`isWatched` is per user).
* `Admin` (exactly one user): a trickle of writes, `recordSale` and `updateProperty`, one every
  few seconds (each commits and invalidates the cache entries it touches).

Properties and localities are drawn with Zipf weights (s = 1.1, as bench/run.py's replay):
a few pages are popular, most are not. Think times are compressed (a real visitor reads a page
for tens of seconds): each user stands for several visitors.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import date
from itertools import accumulate
from typing import Any

from locust import FastHttpUser, between, task

from bench.load.documents import app_documents, require

DOCUMENTS = require(
    app_documents(),
    "Suggest",
    "Property",
    "PropertyEstimate",
    "PropertyComparables",
    "Locality",
    "LocalitySeries",
    "Me",
)
PROPERTY_PAGE_SIZE = 100  # web/app/src/pages/property.ts's PAGE_SIZE
LOCALITY_PAGE_SIZE = 20  # web/app/src/pages/locality.ts's PAGE
ZIPF_S = 1.1

RECORD_SALE = """mutation LoadRecordSale($input: RecordSaleInput!) {
  recordSale(input: $input) { id isMarketSale property { id lastSalePrice } } }"""
UPDATE_PROPERTY = """mutation LoadUpdateProperty($id: ID!, $input: UpdatePropertyInput!) {
  updateProperty(id: $id, input: $input) { id zoning } }"""
ZONINGS = ("R2", "R3", "R4", "B4", "MU1")


def _load_sample() -> dict[str, Any]:
    path = os.environ.get("PROPINTEL_LOAD_SAMPLE")
    if not path:
        raise SystemExit(
            "PROPINTEL_LOAD_SAMPLE is not set: the JSON sample of ids and tokens "
            "(bench/load/run makes it; see bench/load/sample.py)"
        )
    with open(path, encoding="utf-8") as file:
        sample: dict[str, Any] = json.load(file)
    if not sample.get("properties") or not sample.get("localities"):
        raise SystemExit(f"{path}: the sample holds no properties or localities")
    return sample


SAMPLE = _load_sample()
PROPERTIES: list[dict[str, str]] = SAMPLE["properties"]
LOCALITIES: list[str] = SAMPLE["localities"]
USER_TOKENS: list[str] = SAMPLE["user_tokens"]
ADMIN_TOKEN: str = SAMPLE["admin_token"]
RUN_ID: str = SAMPLE["run_id"]
# False when the database has no active price model and none was trained (`--no-train`):
# the page's estimate would only measure an error.
ESTIMATES: bool = SAMPLE.get("estimates", True)


def _zipf_weights(n: int) -> list[float]:
    return list(accumulate(1.0 / (rank**ZIPF_S) for rank in range(1, n + 1)))


PROPERTY_WEIGHTS = _zipf_weights(len(PROPERTIES))
LOCALITY_WEIGHTS = _zipf_weights(len(LOCALITIES))


def pick_property() -> dict[str, str]:
    return random.choices(PROPERTIES, cum_weights=PROPERTY_WEIGHTS)[0]


def pick_locality() -> str:
    return random.choices(LOCALITIES, cum_weights=LOCALITY_WEIGHTS)[0]


def typed_prefixes(address: str) -> list[str]:
    """What a person typing `address` sends, one request per pause: two to four prefixes of
    it, the last one whole words up to the suburb's first letters ("42 king st newt")."""
    text = address.lower()
    cuts = sorted({max(2, round(len(text) * share)) for share in (0.3, 0.55, 0.8)})
    count = random.randint(2, len(cuts) + 1)
    return [text[:cut] for cut in cuts[: count - 1]] + [text[: cuts[-1] + 2]]


class GraphQLUser(FastHttpUser):
    """Posts documents as the web app does (JSON, graphql-response+json accepted); a GraphQL
    error in the answer fails the request, named by its operation."""

    abstract = True
    token: str | None = None

    def graphql(self, name: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "content-type": "application/json",
            "accept": "application/graphql-response+json, application/json",
        }
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        body = {"query": query, "variables": variables}
        with self.client.post(
            "/graphql", json=body, headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return {}
            try:
                answer: dict[str, Any] = response.json()
            except ValueError:
                response.failure("not JSON")
                return {}
            errors = answer.get("errors")
            if errors:
                code = (errors[0].get("extensions") or {}).get("code", "no code")
                response.failure(f"{code}: {errors[0].get('message', '')[:120]}")
                return answer
            response.success()
            return answer

    def app_request(self, name: str, variables: dict[str, Any]) -> dict[str, Any]:
        return self.graphql(name, DOCUMENTS[name], variables)

    def search_as_typed(self) -> str | None:
        """The search box: a `Suggest` per pause in typing (the app waits 150 ms after the
        last key), then the pick. Returns the picked property's id, else the sample's."""
        wanted = pick_property()
        picked: str | None = None
        for prefix in typed_prefixes(wanted["address"]):
            answer = self.app_request("Suggest", {"query": prefix})
            found = ((answer.get("data") or {}).get("searchAddresses")) or []
            picked = found[0]["property"]["id"] if found else None
            self.wait_between(0.15, 0.5)
        return picked or wanted["id"]

    def property_page(self, property_id: str) -> None:
        answer = self.app_request("Property", {"id": property_id, "first": PROPERTY_PAGE_SIZE})
        if not (answer.get("data") or {}).get("property"):
            return
        # The page asks for these two once the facts are shown, each on its own.
        if ESTIMATES:
            self.app_request("PropertyEstimate", {"id": property_id})
        self.app_request("PropertyComparables", {"id": property_id})

    def locality_page(self, locality_id: str) -> None:
        self.app_request("Locality", {"id": locality_id, "first": LOCALITY_PAGE_SIZE})
        self.app_request("LocalitySeries", {"id": locality_id})

    def wait_between(self, low: float, high: float) -> None:
        time.sleep(random.uniform(low, high))  # cooperative: Locust monkey-patches time


class Visitor(GraphQLUser):
    weight = 6
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.search_then_property()  # the home page is a search box: where a visit begins

    @task(5)
    def search_then_property(self) -> None:
        self.property_page(self.search_as_typed() or pick_property()["id"])
        if random.random() < 0.3:
            self.wait_between(0.5, 1.5)
            self.locality_page(pick_locality())

    @task(2)
    def suburb(self) -> None:
        self.locality_page(pick_locality())

    @task(1)
    def property_by_link(self) -> None:
        self.property_page(pick_property()["id"])


class SignedIn(GraphQLUser):
    weight = 2
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.token = random.choice(USER_TOKENS)
        self.account()  # signing in lands on the account page (web/app's signin.ts)

    @task(2)
    def account(self) -> None:
        self.app_request("Me", {})

    @task(3)
    def browse(self) -> None:
        self.property_page(pick_property()["id"])


class Admin(GraphQLUser):
    fixed_count = 1  # one admin whatever the number of users: a trickle
    wait_time = between(2.0, 4.0)
    sales = 0

    def on_start(self) -> None:
        self.token = ADMIN_TOKEN

    @task(1)
    def record_sale(self) -> None:
        Admin.sales += 1
        target = pick_property()
        sale = {
            "propertyId": target["id"],
            "contractDate": date.today().isoformat(),
            "price": random.randrange(400_000, 3_000_000, 1_000),
            "dealingNumber": f"LD{RUN_ID}{os.getpid() % 1000:03}{Admin.sales:05}"[:32],
        }
        self.graphql("LoadRecordSale", RECORD_SALE, {"input": sale})

    @task(1)
    def update_property(self) -> None:
        variables = {"id": pick_property()["id"], "input": {"zoning": random.choice(ZONINGS)}}
        self.graphql("LoadUpdateProperty", UPDATE_PROPERTY, variables)
