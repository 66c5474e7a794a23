"""`polycloud login` and `polycloud logout`: single sign-on with the control plane's OpenID Provider."""

from typing import Annotated

import typer

from polycloud.cli.common import friendly, out, settings
from polycloud.errors import UserError


def register(app: typer.Typer) -> None:
    """Add `login` and `logout`."""
    app.command(epilog="Example: polycloud login --server https://polycloud.example.com:8700")(login)
    app.command(epilog="Example: polycloud logout --server https://polycloud.example.com:8700")(logout)


def _say(message: str) -> None:
    print(message, flush=True)  # plain, unwrapped: a URL must reach the terminal whole


def _server(server: str | None) -> str:
    found = server or settings().server
    if not found:
        raise UserError("name the control plane: polycloud login --server URL (or set POLYCLOUD_SERVER)")
    return found.rstrip("/")


@friendly
def login(
    server: Annotated[
        str | None, typer.Option("--server", help="URL of the control plane (else $POLYCLOUD_SERVER).")
    ] = None,
    no_device: Annotated[
        bool,
        typer.Option(
            "--no-device",
            help="Sign in in a browser on this machine (authorization code + PKCE on a loopback port) "
            "instead of typing a code on any device.",
        ),
    ] = False,
) -> None:
    """Sign in with the control plane's identity provider (SSO); later commands to it use the sign-in."""
    import webbrowser

    from polycloud.client import sso
    from polycloud.client.http import tls_context

    url = _server(server)
    trust = settings().tls_cert
    verify = tls_context(trust) if trust is not None else True
    opener = (lambda _: None) if not no_device else webbrowser.open
    credentials = sso.login(url, device=not no_device, say=_say, open_browser=opener, verify=verify)
    out.print(f"signed in to {url} with {credentials.issuer} (kept in {sso.credentials_path(url)})")


@friendly
def logout(
    server: Annotated[
        str | None, typer.Option("--server", help="URL of the control plane (else $POLYCLOUD_SERVER).")
    ] = None,
) -> None:
    """Forget this user's sign-in to the control plane."""
    from polycloud.client import sso

    url = _server(server)
    if sso.forget(url):
        out.print(f"signed out of {url}")
    else:
        out.print(f"not signed in to {url}")
