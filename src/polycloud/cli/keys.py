"""`polycloud key ...`: gateway inference keys of a service, with a rate limit, a monthly quota and,
for LLM services, limits on tokens per minute and per month."""

from typing import Annotated

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings

key_app = typer.Typer(
    help="Inference keys: once a service has one, the gateway asks every request for a key.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `key` command group."""
    app.add_typer(key_app, name="key", epilog="Example: polycloud key create species --rps 50 --burst 100")


@key_app.command(
    epilog="Examples: polycloud key create species --rps 50 --burst 100 --monthly-quota 1000000\n\n"
    "polycloud key create chat --tokens-per-minute 60000 --monthly-tokens 50000000"
)
@friendly
def create(
    service: Annotated[str, typer.Argument(help="The Service the key opens.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="A label for humans.")] = "default",
    rps: Annotated[float, typer.Option("--rps", help="Sustained requests per second.")] = 50.0,
    burst: Annotated[int, typer.Option("--burst", help="Requests at once after a quiet spell.")] = 100,
    monthly_quota: Annotated[
        int | None,
        typer.Option("--monthly-quota", help="Requests per calendar month (UTC); none by default."),
    ] = None,
    tokens_per_minute: Annotated[
        int | None,
        typer.Option(
            "--tokens-per-minute",
            help="LLM tokens (prompt and completion) per sliding minute, at each gateway; none by default.",
        ),
    ] = None,
    monthly_tokens: Annotated[
        int | None,
        typer.Option("--monthly-tokens", help="LLM tokens per calendar month (UTC); none by default."),
    ] = None,
) -> None:
    """Create an inference key for SERVICE and print it once (only its hash is kept).

    Clients send it as `Authorization: Bearer KEY` or `x-api-key: KEY`. From its first key on, the
    service refuses requests without a valid key (401); over the rate, a quota or a token limit they
    get 429 with Retry-After and the reason.
    """
    client = connect(settings(), start=False, say=err.print)
    made = client.create_key(
        service,
        name=name,
        rps=rps,
        burst=burst,
        monthlyQuota=monthly_quota,
        tokensPerMinute=tokens_per_minute,
        monthlyTokens=monthly_tokens,
    )
    quota = f", {made['monthlyQuota']} requests/month" if made["monthlyQuota"] else ""
    if made.get("tokensPerMinute"):
        quota += f", {made['tokensPerMinute']} tokens/minute"
    if made.get("monthlyTokens"):
        quota += f", {made['monthlyTokens']} tokens/month"
    err.print(f"key #{made['id']} for {service}: {made['rps']:g} requests/s, burst {made['burst']}{quota}")
    err.print("this is the only time the key is shown; keep it safe:")
    out.print(made["key"])


@key_app.command("list", epilog="Example: polycloud key list --service species")
@friendly
def list_(
    service: Annotated[str | None, typer.Option("--service", "-s", help="Only this service's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List inference keys with their limits and this month's requests and LLM tokens (never the keys)."""
    rows = connect(settings(), start=False, say=err.print).keys(service)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="inference keys")
    columns = (
        "id",
        "service",
        "name",
        "key",
        "rps",
        "burst",
        "used / quota",
        "tokens / month",
        "tokens/min",
        "state",
    )
    for col in columns:
        table.add_column(col)
    for r in rows:
        quota = f"{r['usedThisMonth']} / {r['monthlyQuota'] or '-'}"
        tokens = f"{r.get('tokensThisMonth', 0)} / {r.get('monthlyTokens') or '-'}"
        state = "revoked" if r["revoked"] else "active"
        table.add_row(
            str(r["id"]),
            r["service"],
            r["name"],
            r["prefix"] + "…",
            f"{r['rps']:g}",
            str(r["burst"]),
            quota,
            tokens,
            str(r.get("tokensPerMinute") or "-"),
            state,
        )
    out.print(table)


@key_app.command(epilog="Example: polycloud key revoke 3")
@friendly
def revoke(key_id: Annotated[int, typer.Argument(help="The key's id, as in `polycloud key list`.")]) -> None:
    """Revoke an inference key for good; the gateways refuse it within a few seconds."""
    connect(settings(), start=False, say=err.print).revoke_key(key_id)
    out.print(f"key #{key_id} revoked")
