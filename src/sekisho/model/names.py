"""The API server's name, label and port-name rules, as functions returning an error or None.

Each check returns ``None`` when the value is valid, otherwise one sentence saying
what is wrong and what was expected (the text follows the API server's own
messages in ``k8s.io/apimachinery/pkg/util/validation``).
"""

from __future__ import annotations

import re
from functools import lru_cache

_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HAS_LETTER = re.compile(r"[a-z]")

LABEL_CHARSET = "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric"


@lru_cache(maxsize=65536)
def dns1123_label_error(value: str) -> str | None:
    """``metadata.name`` of a Namespace: at most 63 lower-case alphanumerics or '-'."""
    if not value:
        return "must not be empty"
    if len(value) > 63:
        return f'"{value}" is longer than 63 characters (a DNS-1123 label)'
    if not _DNS1123_LABEL.match(value):
        return (
            f"\"{value}\" is not a DNS-1123 label: lower-case alphanumeric characters or '-', "
            "starting and ending with an alphanumeric (e.g. 'my-name')"
        )
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    """Most object names: at most 253 characters, dot-separated DNS-1123 labels."""
    if not value:
        return "must not be empty"
    if len(value) > 253:
        return f'"{value}" is longer than 253 characters (a DNS-1123 subdomain)'
    if not _DNS1123_SUBDOMAIN.match(value):
        return (
            f"\"{value}\" is not a DNS-1123 subdomain: lower-case alphanumeric characters, '-' "
            "or '.', starting and ending with an alphanumeric (e.g. 'example.com')"
        )
    return None


@lru_cache(maxsize=65536)
def label_key_error(key: str) -> str | None:
    """A label key: optional DNS-1123 subdomain prefix (<= 253) and '/', then a name (<= 63)."""
    if not key:
        return "label key must not be empty"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return f"label key \"{key}\": the prefix before '/' must not be empty"
        err = dns1123_subdomain_error(prefix)
        if err is not None:
            return f'label key "{key}": prefix {err}'
    if not name:
        return f'label key "{key}": the name after the prefix must not be empty'
    if len(name) > 63:
        return f'label key "{key}": name part must be at most 63 characters'
    if not _QUALIFIED_NAME.match(name):
        return f'label key "{key}": name part must consist of {LABEL_CHARSET}'
    return None


@lru_cache(maxsize=65536)
def label_value_error(value: str) -> str | None:
    """A label value: empty, or at most 63 characters of the label charset."""
    if value == "":
        return None
    if len(value) > 63:
        return f'label value "{value}" is longer than 63 characters'
    if not _QUALIFIED_NAME.match(value):
        return f'label value "{value}" must be empty or consist of {LABEL_CHARSET}'
    return None


@lru_cache(maxsize=65536)
def port_name_error(name: str) -> str | None:
    """A named port: an IANA service name (RFC 6335 section 5.1)."""
    if not name:
        return "port name must not be empty"
    if len(name) > 15:
        return f'port name "{name}" is longer than 15 characters (an IANA service name)'
    if not _IANA_SVC_NAME.match(name):
        return (
            f"port name \"{name}\" must consist of lower-case letters, digits and '-', "
            "starting and ending with a letter or digit (an IANA service name)"
        )
    if "--" in name:
        return f"port name \"{name}\" must not contain '--' (an IANA service name)"
    if not _HAS_LETTER.search(name):
        return f'port name "{name}" must contain at least one letter (an IANA service name)'
    return None


def port_number_error(value: int) -> str | None:
    if not 1 <= value <= 65535:
        return f"port {value} is not between 1 and 65535"
    return None
