"""The names users give things that become identifiers elsewhere: projects and secrets.

One rule each, checked wherever a name enters (spec labels, the API, the CLI, the vault), so a name one
door accepts is never refused by another: a project is a DNS-1123 label (it scopes tokens, labels and
Kubernetes objects); a secret name is DNS-like too (lower-case letters, digits, `-`, `.`, `_`), never a
path or a shell word.
"""

from __future__ import annotations

import re

from polycloud.errors import UserError

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9._]{0,251}[a-z0-9])?$"
DNS_LABEL = re.compile(DNS_LABEL_PATTERN)
SECRET_NAME = re.compile(SECRET_NAME_PATTERN)

PROJECT_RULE = "a DNS-1123 label (lower-case letters, digits and '-', at most 63)"
SECRET_RULE = (
    "lower-case letters, digits, '-', '.' and '_', starting and ending with a letter or digit (at most 253)"
)
RULES = {DNS_LABEL_PATTERN: PROJECT_RULE, SECRET_NAME_PATTERN: SECRET_RULE}
"""What each pattern means, for messages that would otherwise quote the regular expression."""


def is_project(value: str) -> bool:
    return DNS_LABEL.fullmatch(value) is not None


def check_project(value: str) -> str:
    """`value` when it is a valid project name.

    Raises:
        UserError: It is not a DNS-1123 label.
    """
    if not is_project(value):
        raise UserError(f"project {value!r} must be {PROJECT_RULE}")
    return value


def check_secret_name(value: str) -> str:
    """`value` when it is a valid secret name.

    Raises:
        UserError: It breaks `SECRET_RULE`.
    """
    if SECRET_NAME.fullmatch(value) is None:
        raise UserError(f"secret name {value!r} must be {SECRET_RULE}")
    return value
