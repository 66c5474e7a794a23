"""Every route of the API answers every other method with 405 and an `Allow` naming exactly the methods
that path takes (the union over the routes that share it), never 404 or a partial list."""

from __future__ import annotations

import re

from .conftest import Governed

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UNDOCUMENTED = {
    "/api/v1/openapi.json": {"GET", "HEAD"},
    "/api/v1/docs": {"GET", "HEAD"},
    "/docs/oauth2-redirect": {"GET", "HEAD"},
    "/metrics": {"GET"},
}
"""Routes the OpenAPI document leaves out, with their methods."""


def concrete(path: str) -> str:
    """A URL of `path` with every parameter filled in (`/tokens/{token_id}` → `/tokens/x1`)."""
    return re.sub(r"\{[^}]+\}", "x1", path)


def matches(template: str, url: str) -> bool:
    return re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), url) is not None


def test_every_route_answers_other_methods_with_405_and_the_whole_allow_list(governed: Governed) -> None:
    documented = governed.client.get("/api/v1/openapi.json").json()["paths"]
    table = {path: {m.upper() for m in ops} for path, ops in documented.items()} | UNDOCUMENTED
    assert len(table) > 40
    admin = governed.token("admin")
    wrong = []
    for path in table:
        url = concrete(path)
        expected = set().union(*(methods for other, methods in table.items() if matches(other, url)))
        for method in sorted(set(METHODS) - expected):
            answer = governed.client.request(method, url, headers=admin)
            allow = {m.strip() for m in answer.headers.get("allow", "").split(",") if m.strip()}
            if answer.status_code != 405 or allow != expected:
                wrong.append(
                    f"{method} {url}: {answer.status_code}, Allow {sorted(allow)} != {sorted(expected)}"
                )
    assert not wrong, "\n".join(wrong)


def test_a_path_shared_by_routes_lists_all_their_methods(governed: Governed) -> None:
    answer = governed.client.post("/api/v1/secrets/db-password", headers=governed.token("admin"))
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, PUT"
    assert answer.json() == {"error": "method POST not allowed here; allowed: DELETE, PUT"}


def test_a_post_only_route_answers_get_with_405_not_the_dashboards_404(governed: Governed) -> None:
    answer = governed.client.get("/api/v1/apply")
    assert (answer.status_code, answer.headers["allow"]) == (405, "POST")


def test_the_dashboards_files_still_serve_and_refuse_writes(governed: Governed) -> None:
    assert governed.client.get("/").status_code == 200
    assert governed.client.get("/no-such-file.js").status_code == 404
    refused = governed.client.post("/")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")
