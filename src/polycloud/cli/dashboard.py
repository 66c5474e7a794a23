"""`polycloud dashboard`: the address of the web dashboard, with a single-use login code."""

from typing import Annotated

import typer

from polycloud.cli.common import connect, err, friendly, print_json, settings


def register(app: typer.Typer) -> None:
    """Add the `dashboard` command."""
    app.command(
        name="dashboard",
        epilog="Example: polycloud dashboard --no-browser   (then open the printed address)",
    )(dashboard)


@friendly
def dashboard(
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the address; do not open a browser.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print {url, expiresInS} as JSON.")] = False,
) -> None:
    """Open the fleet's web dashboard, logged in as your token (same role, same project).

    The address carries a login code that works once, within two minutes; the page trades it for a
    session cookie and removes it from the address bar. Without one, the page asks for a token.
    Starts the control plane in the background when none runs.
    """
    client = connect(settings(), start=True, say=err.print)
    made = client.login_code()
    url = f"{client.base_url}/#login={made['code']}"
    if as_json:
        print_json({"url": url, "expiresInS": made["expiresInS"]})
        return
    err.print(
        f"dashboard of {client.base_url}; this address logs you in once, within {made['expiresInS']} s:"
    )
    print(url)
    import webbrowser  # only here: it imports a good part of the standard library

    if not no_browser and not webbrowser.open(url):
        err.print("no browser to open here: open the address above yourself")
